"""``kill -9`` during featurization, scoring and ``compare``: the rerun resumes and ends the same.

Issue 12, hardening 1. Each test runs the real CLI in a subprocess with small shards
(``TUNESIFT_FEATURE_SHARD_ROWS``, ``TUNESIFT_SCORE_SHARD_ROWS``), SIGKILLs it at seeded random
points inside the stage under test (after a seeded number of finished shards or methods, plus
a seeded delay), reruns it, and checks three things:

- resume: the rerun's log says how many shards it computed and how many it reused; reused must
  be every shard finished before the rerun, computed the rest, and the finished files must be
  untouched (same inode, same mtime);
- recompute nothing finished: a finished ``compare`` method is loaded, not run again;
- the final selection, scores and feature shards are byte-identical to an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SHARD_ROWS = 32
POOL_DOCS = 1600  # 50 feature shards, 50 score shards
ENV = {
    **os.environ,
    "TUNESIFT_FEATURE_SHARD_ROWS": str(SHARD_ROWS),
    "TUNESIFT_SCORE_SHARD_ROWS": str(SHARD_ROWS),
}
WORDS = {
    "space": "orbit rocket planet galaxy telescope comet lunar solar astronaut nebula".split(),
    "food": "oven butter flour simmer garlic onion recipe bake sauce pepper".split(),
    "law": "court judge statute appeal contract plaintiff verdict counsel ruling".split(),
}
COMMON = "the a of and to in is was for on with as by at from".split()


def _write(path: Path, n: int, seed: int, topics: list[str]) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        for i in range(n):
            topic = topics[int(rng.integers(len(topics)))]
            words = [
                str(rng.choice(WORDS[topic])) if rng.random() < 0.5 else str(rng.choice(COMMON))
                for _ in range(int(rng.integers(6, 18)))
            ]
            fh.write(json.dumps({"id": f"d{i}", "text": " ".join(words), "source": topic}) + "\n")


@pytest.fixture
def work(tmp_path, shared_cache):
    """Pool, target, and a static model distilled once per session and copied into caches."""
    from tunesift.features.static import StaticEncoder

    assert StaticEncoder(shared_cache).dim > 0  # distills into shared_cache/models once
    _write(tmp_path / "pool.jsonl", POOL_DOCS, 0, sorted(WORDS))
    _write(tmp_path / "target.jsonl", 40, 1, ["space"])
    for name in ("ref", "crash"):
        shutil.copytree(shared_cache / "models", tmp_path / name / "models")
    return tmp_path


def _tunesift(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunesift", "-v", *args]


def _start(cmd: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def _kill_after(cmd: list[str], cwd: Path, count, at_least: int, delay: float) -> str:
    """Start ``cmd``; once ``count()`` reaches ``at_least``, wait ``delay`` s and SIGKILL it."""
    proc = _start(cmd, cwd)
    deadline = time.monotonic() + 900
    while count() < at_least:
        assert proc.poll() is None, f"it ended before the kill point:\n{proc.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    return err


def _done(folder_glob: str, root: Path) -> list[Path]:
    return sorted(root.glob(folder_glob))


def _stamps(paths: list[Path]) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


def _work_log(stderr: str, what: str) -> list[tuple[int, int]]:
    """(computed, reused) from each "<what> <folder>: N shards computed, M reused" log line."""
    pattern = rf"{what} \S+: (\d+) shards computed, (\d+) reused"
    return [(int(a), int(b)) for a, b in re.findall(pattern, stderr)]


def _select(cache: str, out: str) -> list[str]:
    return _tunesift(
        "select", "--pool", "pool.jsonl", "--target", "target.jsonl", "--budget", "60",
        "--featurizer", "static", "--method", "gotd", "--cache-dir", cache, "--out",
        f"{out}.jsonl", "--scores-out", f"{out}_scores.jsonl", "-q",
    )  # fmt: skip


def test_kill_during_featurization_and_scoring_resumes_and_ends_byte_identical(work):
    rng = np.random.default_rng(20261127)
    _finish(_select("ref", "ref"), work)
    n_shards = -(-POOL_DOCS // SHARD_ROWS)
    crash = work / "crash"

    def feature_sums() -> list[Path]:  # the pool's finished feature shards (the bigger folder)
        folders = sorted((crash / "features").glob("*"), key=lambda f: -len(list(f.glob("*"))))
        return sorted(folders[0].glob("shard-*.npy.sum")) if folders else []

    def score_sums() -> list[Path]:
        return _done("scores/*/shard-*.npy.sum", crash)

    # two kills while embedding, at seeded points
    for point in sorted(rng.integers(3, n_shards - 10, size=2)):
        _kill_after(
            _select("crash", "out"), work, lambda: len(feature_sums()), int(point),
            float(rng.uniform(0, 0.05)),
        )  # fmt: skip
        assert not list((crash / "features").glob("*/manifest.json"))  # killed mid-stage
    finished = feature_sums()
    before = _stamps([Path(str(p)[: -len(".sum")]) for p in finished])
    assert 3 <= len(finished) < n_shards

    # two kills while scoring; the first of these runs also finishes the embedding
    logs = []
    for point in sorted(rng.integers(3, n_shards - 10, size=2)):
        logs.append(
            _kill_after(
                _select("crash", "out"),
                work,
                lambda: len(score_sums()),
                int(point),
                float(rng.uniform(0, 0.05)),
            )  # fmt: skip
        )
        assert len(score_sums()) < n_shards
    pool_work = max(_work_log(logs[0], "features"), key=sum)
    assert pool_work == (n_shards - len(finished), len(finished))  # resumed, nothing redone
    assert _stamps([Path(p) for p in before]) == before  # finished shards untouched
    scored = score_sums()
    score_before = _stamps([Path(str(p)[: -len(".sum")]) for p in scored])

    final = _finish(_select("crash", "out"), work)
    assert _work_log(final, "scores") == [(n_shards - len(scored), len(scored))]
    assert "features from cache" in final and not _work_log(final, "features")
    assert _stamps([Path(p) for p in score_before]) == score_before

    assert (work / "out.jsonl").read_bytes() == (work / "ref.jsonl").read_bytes()
    assert (work / "out_scores.jsonl").read_bytes() == (work / "ref_scores.jsonl").read_bytes()
    ref_files = sorted((work / "ref" / "features").rglob("shard-*.npy"))
    assert len(ref_files) == n_shards + 2  # the pool's, and the target's two shards
    for ref in ref_files:
        twin = crash / ref.relative_to(work / "ref")
        assert twin.read_bytes() == ref.read_bytes(), twin


# The crash runs pause 0.5 s after each finished method: without it a fast machine finishes the
# last, cheap methods inside the kill delay, and the kill lands after the run instead of inside it.
PAUSING = (
    "import sys, time; import tunesift.comparison as c; save = c._FinishedRuns.save; "
    "c._FinishedRuns.save = lambda self, *a: (save(self, *a), time.sleep(0.5))[0]; "
    "from tunesift.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def _compare(cache: str, save: str, pause: bool = False) -> list[str]:
    command = _tunesift(
        "compare", "--pool", "pool.jsonl", "--target", "target.jsonl", "--budget", "60",
        "--featurizer", "static", "--methods", "gotd,dsir,kmq,rds,random",
        "--cache-dir", cache, "--save", save, "-q",
    )  # fmt: skip
    return [sys.executable, "-c", PAUSING, *command[3:]] if pause else command


def _without_seconds(path: Path) -> dict:
    data = json.loads(path.read_text())
    for row in data["results"]:
        row.pop("seconds")  # wall time: differs between any two runs
    return data


def test_kill_during_compare_keeps_finished_methods_and_ends_identical(work):
    rng = np.random.default_rng(7)
    _finish(_compare("ref", "ref.json"), work)
    crash = work / "crash"

    def finished() -> list[Path]:
        return _done("compare/*/*/result.json", crash)

    for point in (int(rng.integers(1, 3)), int(rng.integers(3, 5))):
        _kill_after(
            _compare("crash", "out.json", pause=True), work, lambda: len(finished()), point,
            float(rng.uniform(0, 0.2)),
        )  # fmt: skip
        assert len(finished()) < 5 and not (work / "out.json").exists()
    kept = finished()
    stamps = _stamps([f for d in kept for f in d.parent.iterdir()])
    final = _finish(_compare("crash", "out.json"), work)
    reloaded = re.findall(r"compare: (\S+) finished in an earlier run", final)
    assert sorted(reloaded) == sorted(
        json.loads(p.read_text())["selection"]["method"] for p in kept
    )
    assert _stamps([Path(p) for p in stamps]) == stamps
    assert _without_seconds(work / "out.json") == _without_seconds(work / "ref.json")
