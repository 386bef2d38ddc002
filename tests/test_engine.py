"""Engines: the map steps (embedding and scoring shards) give the same results here and on Ray.

The Ray tests start one local Ray cluster (2 CPUs) for the module; CI installs Ray with the
test extra, so they run there.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tunesift.api import select
from tunesift.cli.main import main
from tunesift.corpus.corpus import Corpus
from tunesift.engine import LocalEngine, RayEngine, get_engine
from tunesift.errors import TunesiftError
from tunesift.features.registry import get_featurizer
from tunesift.features.store import featurize

WORDS = (
    "cat dog horse cow sheep goat field farm barn hay compile kernel pointer buffer package "
    "compiler syntax error server port test commit river stone bridge rain"
).split()


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 12)))) for _ in range(n)]


def _write(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("engine")
    pool = _write(d / "pool.jsonl", _texts(300, 0))
    target = _write(d / "target.jsonl", [t for t in _texts(80, 1) if "cat" in t or "dog" in t])
    return pool, target


# ---- local engine and the engine factory -------------------------------------------------------


def test_local_engine_maps_in_order_with_the_shared_state():
    out = list(LocalEngine().map(lambda shared, x: shared + x, range(5), shared=10))
    assert out == [10, 11, 12, 13, 14]


def test_get_engine_names_and_errors():
    assert isinstance(get_engine("local"), LocalEngine)
    assert isinstance(get_engine(None), LocalEngine)
    assert isinstance(get_engine("ray", address="auto"), RayEngine)
    eng = LocalEngine()
    assert get_engine(eng) is eng
    with pytest.raises(TunesiftError, match="unknown engine 'spark'"):
        get_engine("spark")
    with pytest.raises(TunesiftError, match="takes no options"):
        get_engine("local", address="auto")
    with pytest.raises(TunesiftError, match="must be positive"):
        RayEngine(cpus_per_task=0)
    with pytest.raises(TunesiftError, match="shard_rows must be at least 1"):
        RayEngine(shard_rows=0)


def test_ray_missing_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(TunesiftError, match=r"pip install 'tunesift\[ray\]'"):
        list(RayEngine().map(lambda s, x: x, [1]))


def test_cli_rejects_ray_options_without_the_ray_engine(corpus, tmp_path, capsys):
    pool, target = corpus
    rc = main(
        ["select", "--pool", str(pool), "--target", str(target), "--budget", "5",
         "--featurizer", "ngrams", "--ray-address", "auto", "--out", str(tmp_path / "s.jsonl")]
    )  # fmt: skip
    assert rc == 2
    assert "need --engine ray" in capsys.readouterr().err


# ---- Ray: one local cluster for the module -----------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster():
    import sys

    ray = pytest.importorskip("ray")
    # the helpers below travel by value: Ray's workers cannot import this test module
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _add(shared, x):
    return shared["base"] + x


def _fail(shared, x):
    if x == 3:
        raise TunesiftError(f"bad item {x}")
    if x == 4:
        raise ValueError("not ours")
    return x


def _who(shared, x):
    return os.getpid(), id(shared)


def test_ray_map_keeps_the_order_with_a_small_window(ray_cluster):
    eng = RayEngine(max_in_flight=3)
    assert list(eng.map(_add, range(20), shared={"base": 100})) == list(range(100, 120))
    assert list(eng.map(_add, [], shared={"base": 1})) == []


def test_ray_workers_unpickle_the_shared_state_once_each(ray_cluster):
    seen = list(RayEngine().map(_who, range(24), shared={"model": np.zeros(1000)}))
    by_pid: dict[int, set[int]] = {}
    for pid, obj in seen:
        by_pid.setdefault(pid, set()).add(obj)
    assert all(len(objs) == 1 for objs in by_pid.values()), by_pid
    assert os.getpid() not in by_pid  # the work ran in Ray workers, not here


def test_ray_task_errors_come_back_as_tunesift_errors(ray_cluster):
    with pytest.raises(TunesiftError, match="bad item 3"):
        list(RayEngine().map(_fail, [1, 2, 3]))
    with pytest.raises(TunesiftError, match="a Ray task failed.*not ours"):
        list(RayEngine().map(_fail, [4]))


@pytest.mark.parametrize("method", ["gotd", "rds", "dsir", "random"])
def test_ray_and_local_select_the_same_rows_with_the_same_scores(
    ray_cluster, corpus, tmp_path, method
):
    pool, target = corpus
    kw = dict(method=method, featurizer="ngrams", seed=3)
    # locally one shard of the 300-row pool; on Ray 9 shards of 37 rows
    local = select(pool, target, 40, cache_dir=tmp_path / "a", **kw)
    ray_engine = RayEngine(shard_rows=37)
    on_ray = select(pool, target, 40, cache_dir=tmp_path / "b", engine=ray_engine, **kw)
    assert on_ray.info["engine"] == "ray" and local.info["engine"] == "local"
    np.testing.assert_array_equal(local.indices, on_ray.indices)
    np.testing.assert_array_equal(local.scores, on_ray.scores)  # bit for bit


def test_ray_embeds_minilm_shards_like_local_and_the_cache_is_shared(ray_cluster, tmp_path):
    path = _write(tmp_path / "texts.jsonl", _texts(70, 5))
    feat = get_featurizer("minilm", cache_dir=tmp_path, device="cpu")
    x_local = np.asarray(
        featurize(Corpus([path]), feat, cache_dir=tmp_path / "local", shard_size=16)
    )
    ray_cache = tmp_path / "ray"
    x_ray = np.asarray(
        featurize(Corpus([path]), feat, cache_dir=ray_cache, shard_size=16, engine=RayEngine())
    )
    assert x_ray.shape == (70, 384)
    # float16 on disk: the same stored values, whichever process computed them
    np.testing.assert_allclose(x_local, x_ray, atol=1e-3)
    same = np.mean(np.all(x_local == x_ray, axis=1))
    assert same > 0.9, same
    # a lost shard is recomputed on Ray; the others are not touched (a resume)
    (root,) = (ray_cache / "features").iterdir()
    shards = sorted(root.glob("shard-*.npy"))
    assert len(shards) == 5  # 16 + 16 + 16 + 16 + 6
    (root / "manifest.json").unlink()
    shards[2].unlink()
    before = {p.name: p.stat().st_mtime_ns for p in shards if p != shards[2]}
    x_again = np.asarray(
        featurize(Corpus([path]), feat, cache_dir=ray_cache, shard_size=16, engine=RayEngine())
    )
    np.testing.assert_array_equal(x_again, x_ray)
    assert {p.name: p.stat().st_mtime_ns for p in shards if p != shards[2]} == before


def test_cli_select_and_compare_on_ray(ray_cluster, corpus, tmp_path, capsys):
    pool, target = corpus
    common = ["--pool", str(pool), "--target", str(target), "--budget", "25",
              "--featurizer", "ngrams", "--cache-dir", str(tmp_path / "c"), "-q"]  # fmt: skip
    a, b = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert main(["select", *common, "--out", str(a)]) == 0
    assert main(["select", *common, "--out", str(b), "--engine", "ray"]) == 0
    assert a.read_bytes() == b.read_bytes()
    meta = json.loads(Path(str(b) + ".meta.json").read_text())
    assert meta["engine"] == "ray"
    capsys.readouterr()
    assert main(["compare", *common, "--methods", "gotd,dsir", "--engine", "ray"]) == 0
    assert "gotd" in capsys.readouterr().out
