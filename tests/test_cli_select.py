"""`tunesift select` end to end: the paper's Fig. 3 through the CLI, outputs, determinism, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tunesift.cli.main import main


def run_cli(*args: str) -> int:
    return main(["select", *map(str, args)])


def run_ngrams(tmp_path: Path, *args) -> int:
    """A text-input run with the fast n-gram featurizer and a per-test cache."""
    return run_cli(*args, "--featurizer", "ngrams", "--cache-dir", tmp_path / "cache", "-q")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def fig3_features(tmp_path):
    rng = np.random.default_rng(0)
    pool = np.vstack([rng.normal(size=(9900, 2)), rng.normal(size=(100, 2)) + [5, 0]])
    target = np.vstack([rng.normal(size=(250, 2)), rng.normal(size=(250, 2)) + [5, 0]])
    np.save(tmp_path / "X.npy", pool.astype(np.float32))
    np.save(tmp_path / "Y.npy", target.astype(np.float32))
    return tmp_path / "X.npy", tmp_path / "Y.npy"


def test_fig3_through_the_cli(fig3_features, tmp_path, capsys):
    x, y = fig3_features
    out = tmp_path / "sel.jsonl"
    code = run_cli(
        "--pool-features",
        x,
        "--target-features",
        y,
        "--budget",
        100,
        "--out",
        out,
        "--scores-out",
        tmp_path / "scores.parquet",
        "-q",
    )
    assert code == 0
    rows = read_jsonl(out)
    assert len(rows) == 100
    assert [r["rank"] for r in rows] == list(range(1, 101))
    assert set(rows[0]) == {"index", "score", "rank"}
    dogs = sum(r["index"] >= 9900 for r in rows)
    assert dogs >= 90, f"GOT-D took only {dogs}/100 from the second Gaussian"
    # scores ascend with rank: the most negative potentials first
    assert all(a["score"] <= b["score"] for a, b in zip(rows, rows[1:], strict=False))
    # nearest neighbours of the target, on the same features, take mostly from the first Gaussian
    pool, target = np.load(x), np.load(y)
    nn = np.argsort(((pool[:, None] - target[None]) ** 2).sum(-1).min(1), kind="stable")[:100]
    assert (nn < 9900).mean() > 0.5
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["counts"] == {"pool": 10000, "target": 500, "selected": 100}
    assert meta["diagnostics"]["converged"] is True
    assert meta["diagnostics"]["eps_absolute"] > 0
    assert meta["params"]["epsilon_mode"] == "relative"
    assert "torch" in meta["versions"]
    import pyarrow.parquet as pq

    scores = pq.read_table(tmp_path / "scores.parquet").to_pydict()
    assert scores["index"] == list(range(10000))
    assert np.allclose(
        np.array(scores["score"])[[r["index"] for r in rows]], [r["score"] for r in rows]
    )
    assert "target-selection" in capsys.readouterr().out


def test_same_inputs_and_seed_give_byte_identical_selection(fig3_features, tmp_path):
    x, y = fig3_features
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        assert (
            run_cli(
                "--pool-features",
                x,
                "--target-features",
                y,
                "--budget",
                50,
                "--out",
                tmp_path / name,
                "--seed",
                7,
                "-q",
            )
            == 0
        )
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ANIMALS = [
    "the cat sat on the mat",
    "a dog barked at the mailman",
    "the horse ran in the field",
    "birds sing in the morning",
    "a cow grazes in the meadow",
    "the fox jumped over the dog",
]
CODE = [
    "compile the kernel module with gcc",
    "the function returns a pointer to the buffer",
    "install the package with pip",
    "the compiler reports a syntax error",
    "run the unit tests before you commit",
    "the server listens on port 8080",
]


@pytest.fixture
def text_corpus(tmp_path):
    pool_a = _write_jsonl(
        tmp_path / "animals.jsonl",
        [{"text": t, "label": "animal", "n": i} for i, t in enumerate(ANIMALS * 5)],
    )
    pool_c = _write_jsonl(
        tmp_path / "code.jsonl",
        [{"text": t, "label": "code", "n": i} for i, t in enumerate(CODE * 5)],
    )
    target = _write_jsonl(
        tmp_path / "target.jsonl",
        [{"text": "a cat and a dog in the field"}, {"text": "the horse and the cow"}],
    )
    return pool_a, pool_c, target


def test_text_pipeline_with_sources_and_passthrough(text_corpus, tmp_path, capsys):
    pool_a, pool_c, target = text_corpus
    args = ["--pool", pool_a, pool_c, "--target", target, "--budget", 10]
    out = tmp_path / "sel.jsonl"
    assert run_ngrams(tmp_path, *args, "--out", out, "--group-by", "label") == 0
    rows = read_jsonl(out)
    assert len(rows) == 10
    assert all({"text", "label", "n", "source", "index", "score", "rank"} <= set(r) for r in rows)
    assert sum(r["source"] == "animals" for r in rows) >= 8
    printed = capsys.readouterr().out
    assert "animals" in printed and "selected by label" in printed
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["pool_by_source"] == {"animals": 30, "code": 30}
    assert meta["featurizer"].startswith("ngrams")
    # byte-identical on a rerun (features now come from the cache)
    out2 = tmp_path / "sel2.jsonl"
    assert run_ngrams(tmp_path, *args, "--out", out2) == 0
    assert out.read_bytes() == out2.read_bytes()


def test_parquet_output(text_corpus, tmp_path):
    pool_a, pool_c, target = text_corpus
    out = tmp_path / "sel.parquet"
    assert (
        run_ngrams(
            tmp_path, "--pool", pool_a, pool_c, "--target", target, "--budget", 5, "--out", out
        )
        == 0
    )
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pylist()
    assert [r["rank"] for r in table] == [1, 2, 3, 4, 5]


# ---- bad input: one line naming the file (and line), exit code 2, never a traceback -----------


def _bad(tmp_path, capsys, *args) -> str:
    code = run_ngrams(tmp_path, *args, "--out", tmp_path / "o.jsonl")
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("tunesift: error:")
    return err


def test_missing_file(text_corpus, tmp_path, capsys):
    _, _, target = text_corpus
    err = _bad(
        tmp_path, capsys, "--pool", tmp_path / "nope.jsonl", "--target", target, "--budget", 1
    )
    assert "nope.jsonl" in err


def test_unknown_format(text_corpus, tmp_path, capsys):
    _, _, target = text_corpus
    (tmp_path / "pool.xyz").write_text("hello\n")
    err = _bad(tmp_path, capsys, "--pool", tmp_path / "pool.xyz", "--target", target, "--budget", 1)
    assert "pool.xyz" in err


def test_missing_text_field(text_corpus, tmp_path, capsys):
    _, _, target = text_corpus
    pool = _write_jsonl(tmp_path / "p.jsonl", [{"body": "x"}])
    err = _bad(tmp_path, capsys, "--pool", pool, "--target", target, "--budget", 1)
    assert "p.jsonl:1" in err and "text" in err


def test_malformed_jsonl_line(text_corpus, tmp_path, capsys):
    pool_a, _, target = text_corpus
    pool = tmp_path / "broken.jsonl"
    pool.write_text('{"text": "fine"}\n{"text": "also fine"}\n{"text": oops}\n')
    err = _bad(tmp_path, capsys, "--pool", pool, "--target", target, "--budget", 1)
    assert "broken.jsonl:3" in err


def test_non_utf8_bytes(text_corpus, tmp_path, capsys):
    _, _, target = text_corpus
    pool = tmp_path / "latin1.jsonl"
    pool.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    err = _bad(tmp_path, capsys, "--pool", pool, "--target", target, "--budget", 1)
    assert "latin1.jsonl:2" in err and "UTF-8" in err


def test_empty_target(text_corpus, tmp_path, capsys):
    pool_a, _, _ = text_corpus
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    err = _bad(tmp_path, capsys, "--pool", pool_a, "--target", empty, "--budget", 1)
    assert "empty.jsonl" in err and "no records" in err


def test_budget_larger_than_pool(text_corpus, tmp_path, capsys):
    pool_a, _, target = text_corpus
    err = _bad(tmp_path, capsys, "--pool", pool_a, "--target", target, "--budget", 31)
    assert "animals.jsonl" in err and "31" in err and "30" in err


def test_feature_rows_not_matching_records(text_corpus, tmp_path, capsys):
    pool_a, _, target = text_corpus
    np.save(tmp_path / "X.npy", np.zeros((29, 4), np.float32))
    np.save(tmp_path / "Y.npy", np.zeros((2, 4), np.float32))
    err = _bad(
        tmp_path,
        capsys,
        "--pool",
        pool_a,
        "--pool-features",
        tmp_path / "X.npy",
        "--target-features",
        tmp_path / "Y.npy",
        "--budget",
        1,
    )
    assert "X.npy" in err and "29" in err and "30" in err


def test_on_bad_skip_counts_and_reports(text_corpus, tmp_path, capsys):
    _, _, target = text_corpus
    pool = tmp_path / "mixed.jsonl"
    good = [json.dumps({"text": t}) for t in ANIMALS]
    pool.write_bytes(
        ("\n".join(good[:3]) + '\n{"text": oops}\n{"body": "no text"}\n').encode()
        + b'{"text": "caf\xe9"}\n'
        + ("\n".join(good[3:]) + "\n").encode()
    )
    out = tmp_path / "sel.jsonl"
    code = run_ngrams(
        tmp_path,
        "--pool",
        pool,
        "--target",
        target,
        "--budget",
        6,
        "--out",
        out,
        "--on-bad",
        "skip",
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "bad records skipped: pool 3" in printed
    assert "mixed.jsonl:4" in printed
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["bad_records"]["pool"]["skipped"] == 3
    assert meta["counts"]["pool"] == 6
    # indices count good records only, and the six good ones are all there
    assert sorted(r["index"] for r in read_jsonl(out)) == list(range(6))


def test_entry_point_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tunesift.cli.main",
            "select",
            "--pool",
            str(tmp_path / "missing.jsonl"),
            "--target",
            str(tmp_path / "t.jsonl"),
            "--budget",
            "3",
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "missing.jsonl" in proc.stderr


def test_ot_mode_and_fit_sample_reach_the_method(fig3_features, tmp_path):
    x, y = fig3_features
    out = tmp_path / "sel.jsonl"
    assert run_cli("--pool-features", x, "--target-features", y, "--budget", 100, "--out", out,
                   "--ot-mode", "sampled", "--fit-sample", 2000, "-q") == 0  # fmt: skip
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["params"]["ot_mode"] == "sampled" and meta["params"]["fit_sample"] == 2000
    assert meta["diagnostics"]["ot_mode"] == "sampled" and meta["diagnostics"]["fit_size"] == 2000
    assert sum(r["index"] >= 9900 for r in read_jsonl(out)) >= 90


def test_pca_before_ot(fig3_features, tmp_path):
    x, y = fig3_features  # 2-d: PCA to 1 keeps the axis that separates cats from dogs
    out = tmp_path / "sel.jsonl"
    assert run_cli("--pool-features", x, "--target-features", y, "--budget", 100,
                   "--out", out, "--pca-dim", 1, "-q") == 0  # fmt: skip
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["pca"]["dim"] == 1 and meta["pca"]["explained_variance_ratio"] > 0.5
    assert sum(r["index"] >= 9900 for r in read_jsonl(out)) >= 90


def test_scoring_in_shards_gives_the_same_selection(fig3_features, tmp_path, monkeypatch):
    from tunesift import api

    x, y = fig3_features
    whole, sharded = tmp_path / "whole.jsonl", tmp_path / "sharded.jsonl"
    assert (
        run_cli("--pool-features", x, "--target-features", y, "--budget", 100, "--out", whole, "-q")
        == 0
    )
    monkeypatch.setattr(api, "SCORE_SHARD_ROWS", 999)
    assert (
        run_cli(
            "--pool-features", x, "--target-features", y, "--budget", 100, "--out", sharded, "-q"
        )
        == 0
    )
    assert whole.read_bytes() == sharded.read_bytes()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_one_line_error(text_corpus, tmp_path, capsys):
    pool_a, _, target = text_corpus
    err = _bad(
        tmp_path, capsys, "--pool", pool_a, "--target", target, "--budget", 1, "--device", "cuda"
    )
    assert "CUDA" in err
