"""The feature cache is never reused for other inputs, detects damage, and survives sharing.

Issue 12, hardening 4. Each test damages or mismatches a real cache folder the way a user's
disk, an upgrade or a second process would, and checks that the features come out right and
that only what had to be recomputed was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tunesift.corpus.corpus import Corpus
from tunesift.corpus.records import RecordBatch
from tunesift.features.ngrams import HashedNgrams
from tunesift.features.store import cache_key, featurize


class FakeCorpus:
    def __init__(self, texts, fingerprint="fp"):
        self.texts, self._fp = texts, fingerprint

    def batches(self, batch_size=1024):
        for s in range(0, len(self.texts), batch_size):
            chunk = self.texts[s : s + batch_size]
            n = len(chunk)
            yield RecordBatch(
                list(range(s, s + n)), chunk, chunk, ["x"] * n, [{}] * n, [("f", 1)] * n
            )

    def fingerprint(self):
        return self._fp


class Counting:
    """Deterministic vectors; counts encode calls; ``version`` stands for a model version."""

    def __init__(self, version="v1", scale=1.0):
        self.id = f"counting-{version}-x{scale}"
        self.scale = scale
        self.calls = 0

    dim = 3

    def encode(self, texts, batch_size=64, show_progress=False):
        self.calls += 1
        return self.scale * np.array(
            [[len(t), sum(map(ord, t)) % 97, i % 5] for i, t in enumerate(texts)], np.float32
        )


TEXTS = [f"document number {i} about {'cats' if i % 2 else 'code'}" for i in range(50)]


def _root(cache: Path, f: Counting, fp: str = "fp") -> Path:
    return cache / "features" / cache_key(f"{f.id}|float16", fp)


def test_a_cache_folder_holding_another_featurizers_shards_is_not_reused(tmp_path):
    """A folder reached under this key but written for another featurizer, model version or
    parameters (a copied cache, a hand-moved folder) is checked against its manifest, not
    trusted for its shard count."""
    other = Counting(version="v1", scale=1.0)
    featurize(FakeCorpus(TEXTS), other, cache_dir=tmp_path, shard_size=10)
    for mine in (Counting(version="v2"), Counting(version="v1", scale=2.0)):
        shutil.rmtree(_root(tmp_path, mine), ignore_errors=True)
        shutil.copytree(_root(tmp_path, other), _root(tmp_path, mine))
        out = np.asarray(featurize(FakeCorpus(TEXTS), mine, cache_dir=tmp_path, shard_size=10))
        assert mine.calls == 5  # every shard computed again
        assert np.array_equal(out, np.asarray(mine.encode(TEXTS), np.float16).astype(np.float32))


@pytest.mark.parametrize(
    "a, b",
    [
        (Counting(version="v1"), Counting(version="v2")),  # model version
        (Counting(scale=1.0), Counting(scale=3.0)),  # parameters
    ],
    ids=["model-version", "parameters"],
)
def test_another_model_version_or_parameters_get_their_own_cache(tmp_path, a, b):
    featurize(FakeCorpus(TEXTS), a, cache_dir=tmp_path, shard_size=10)
    xb = np.asarray(featurize(FakeCorpus(TEXTS), b, cache_dir=tmp_path, shard_size=10))
    assert a.calls == 5 and b.calls == 5  # b computed its own, never read a's
    assert np.array_equal(xb, np.asarray(b.encode(TEXTS), np.float16).astype(np.float32))
    assert len(list((tmp_path / "features").iterdir())) == 2


def test_another_featurizer_gets_its_own_cache(tmp_path):
    corpus = FakeCorpus(TEXTS)
    x1 = featurize(corpus, HashedNgrams(num_buckets=64), cache_dir=tmp_path)
    x2 = featurize(corpus, HashedNgrams(num_buckets=128), cache_dir=tmp_path)
    x3 = featurize(corpus, Counting(), cache_dir=tmp_path)
    assert (x1.shape[1], x2.shape[1], x3.shape[1]) == (64, 128, 3)


def test_a_changed_input_file_is_featurized_again(tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:20]))
    f = Counting()
    before = np.asarray(featurize(Corpus(pool), f, cache_dir=tmp_path / "c", shard_size=8))
    assert f.calls == 3
    featurize(Corpus(pool), f, cache_dir=tmp_path / "c", shard_size=8)
    assert f.calls == 3  # unchanged: read from the cache
    # same size, new content (one character), newer mtime
    pool.write_text(pool.read_text().replace("number 3 ", "number 9 "))
    after = np.asarray(featurize(Corpus(pool), f, cache_dir=tmp_path / "c", shard_size=8))
    assert f.calls == 6
    assert not np.array_equal(before, after)
    assert np.array_equal(after[4:], before[4:]) and not np.array_equal(after[3], before[3])


@pytest.mark.parametrize("damage", ["truncated", "longer", "bit-flip", "no-sidecar"])
def test_a_damaged_shard_is_detected_and_only_it_is_recomputed(tmp_path, damage):
    reference = np.asarray(
        featurize(FakeCorpus(TEXTS), Counting(), cache_dir=tmp_path, shard_size=10)
    )
    shard = _root(tmp_path, Counting()) / "shard-00002.npy"
    data = bytearray(shard.read_bytes())
    if damage == "truncated":
        shard.write_bytes(data[: len(data) - 7])
    elif damage == "longer":
        shard.write_bytes(data + b"\0" * 8)
    elif damage == "bit-flip":  # same size, same header: only the checksum can tell
        data[-3] ^= 0x40
        shard.write_bytes(data)
    else:
        Path(str(shard) + ".sum").unlink()
    f = Counting()
    out = np.asarray(featurize(FakeCorpus(TEXTS), f, cache_dir=tmp_path, shard_size=10))
    assert f.calls == 1
    assert np.array_equal(out, reference)


@pytest.mark.parametrize("damage", ["torn", "wrong-checksum", "other-input", "missing-shard"])
def test_a_damaged_manifest_is_detected_and_the_cache_rebuilt(tmp_path, damage):
    reference = np.asarray(
        featurize(FakeCorpus(TEXTS), Counting(), cache_dir=tmp_path, shard_size=10)
    )
    manifest = _root(tmp_path, Counting()) / "manifest.json"
    meta = json.loads(manifest.read_text())
    if damage == "torn":
        manifest.write_text(manifest.read_text()[:40])
    elif damage == "wrong-checksum":
        meta["shards"][1]["crc32"] ^= 1
        manifest.write_text(json.dumps(meta))
    elif damage == "other-input":
        meta["fingerprint"] = "another corpus"
        manifest.write_text(json.dumps(meta))
    else:
        meta["shards"].append({"file": "shard-00005.npy", "rows": 10, "crc32": 1, "bytes": 9})
        manifest.write_text(json.dumps(meta))
    f = Counting()
    out = np.asarray(featurize(FakeCorpus(TEXTS), f, cache_dir=tmp_path, shard_size=10))
    assert f.calls == 0  # the shards themselves check out: only the manifest is rewritten
    assert np.array_equal(out, reference)
    assert len(json.loads(manifest.read_text())["shards"]) == 5


def test_leftover_temporary_files_of_a_killed_writer_are_cleared(tmp_path):
    f = Counting()
    featurize(FakeCorpus(TEXTS), f, cache_dir=tmp_path, shard_size=10)
    root = _root(tmp_path, f)
    (root / "manifest.json").unlink()
    (root / "shard-00004.npy.99999.tmp").write_bytes(b"half a shard")
    featurize(FakeCorpus(TEXTS), f, cache_dir=tmp_path, shard_size=10)
    assert not list(root.glob("*.tmp"))


def _write_pool(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = "orbit rocket planet oven butter flour court judge chord melody the a of".split()
    with open(path, "w") as fh:
        for i in range(n):
            text = " ".join(rng.choice(words, size=int(rng.integers(6, 16))))
            fh.write(json.dumps({"id": i, "text": text}) + "\n")


@pytest.mark.slow
def test_two_processes_sharing_one_cache_both_finish_with_identical_outputs(tmp_path):
    """Two CLI runs start together on one cache folder: one embeds, the other waits on the
    folder's lock and reads its shards; both write the same selection and scores."""
    _write_pool(tmp_path / "pool.jsonl", 1500, 0)
    _write_pool(tmp_path / "target.jsonl", 30, 1)
    env = {**os.environ, "TUNESIFT_FEATURE_SHARD_ROWS": "64", "TUNESIFT_SCORE_SHARD_ROWS": "128"}
    procs = []
    for name in ("a", "b"):
        cmd = [
            sys.executable, "-m", "tunesift", "-v", "select", "--pool", "pool.jsonl",
            "--target", "target.jsonl", "--budget", "50", "--featurizer", "ngrams",
            "--method", "rds", "--cache-dir", "cache", "--out", f"{name}.jsonl",
            "--scores-out", f"{name}_scores.jsonl", "-q",
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        )
    logs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in logs]
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a_scores.jsonl").read_bytes() == (tmp_path / "b_scores.jsonl").read_bytes()
    # the pool's 24 shards were embedded once in all: the second run found them done
    computed = [
        int(line.split(": ")[-1].split(" shards computed")[0])
        for _, err in logs
        for line in err.splitlines()
        if "tunesift.features.store: features" in line and "shards computed" in line
    ]
    pool_root = tmp_path / "cache" / "features"
    assert sum(computed) == sum(len(list(r.glob("shard-*.npy"))) for r in pool_root.iterdir())
    assert not list(pool_root.glob("*/*.tmp"))


def test_score_shards_resume_after_a_crash_and_are_keyed_by_the_fitted_state(tmp_path, monkeypatch):
    """Scoring in 16-row shards: a crash after 3 shards leaves 3 kept; the rerun scores only
    the other 7 and selects the same rows; another target (another fitted state) reuses none."""
    from tunesift import select
    from tunesift.methods.rds import RDS

    rng = np.random.default_rng(0)
    np.save(tmp_path / "pool.npy", rng.normal(size=(160, 8)).astype(np.float32))
    np.save(tmp_path / "t1.npy", rng.normal(size=(5, 8)).astype(np.float32))
    np.save(tmp_path / "t2.npy", rng.normal(size=(5, 8)).astype(np.float32))
    monkeypatch.setenv("TUNESIFT_SCORE_SHARD_ROWS", "16")
    calls = {"n": 0, "crash_at": None}
    real_score = RDS.score

    def counted(self, pool):
        if calls["crash_at"] is not None and calls["n"] >= calls["crash_at"]:
            raise KeyboardInterrupt  # stands for kill -9 after three finished shards
        calls["n"] += 1
        return real_score(self, pool)

    monkeypatch.setattr(RDS, "score", counted)

    def run(target):
        return select(
            pool_features=tmp_path / "pool.npy", target_features=tmp_path / target,
            budget=20, method="rds", cache_dir=tmp_path / "cache",
        )  # fmt: skip

    reference = select(
        pool_features=tmp_path / "pool.npy", target_features=tmp_path / "t1.npy", budget=20,
        method="rds", cache_dir=tmp_path / "other-cache",
    )  # fmt: skip
    calls.update(n=0, crash_at=3)
    with pytest.raises(KeyboardInterrupt):
        run("t1.npy")
    assert len(list((tmp_path / "cache" / "scores").glob("*/shard-*.npy.sum"))) == 3
    calls.update(n=0, crash_at=None)
    resumed = run("t1.npy")
    assert calls["n"] == 7
    assert np.array_equal(resumed.scores, reference.scores)
    assert np.array_equal(resumed.indices, reference.indices)
    calls.update(n=0)
    run("t1.npy")
    assert calls["n"] == 0  # all ten shards kept
    run("t2.npy")
    assert calls["n"] == 10  # another fitted state: nothing reused
