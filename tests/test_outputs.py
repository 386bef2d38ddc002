"""Outputs never eat an input or a user's file, are written atomically, and fail cleanly when the
disk does (issue 12: defect 1, hardening 2 and 6). Every command's guard runs before any work:
the tests replace the work with a function that fails the test if it is ever reached."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tunesift.cli.main import main
from tunesift.errors import OutputError
from tunesift.outputs import (
    LEDGER,
    atomic_open,
    check_outputs,
    record_outputs,
    write_json_atomic,
    write_text_atomic,
    written_by_tunesift,
)

POOL = ["the cat sat on the mat", "a dog barked at the mailman", "compile the kernel module"]


def _jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


@pytest.fixture
def files(tmp_path):
    pool = _jsonl(tmp_path / "p.jsonl", POOL)
    target = _jsonl(tmp_path / "t.jsonl", ["a cat and a dog"])
    return pool, target


def select(tmp_path: Path, *args) -> int:
    return main(
        ["select", "--featurizer", "ngrams", "--cache-dir", str(tmp_path / "cache"), "-q"]
        + [str(a) for a in args]
    )


def _no_work(*args, **kwargs):
    raise AssertionError("the command started its work before refusing its output")


def _one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tunesift: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err
    return err


def _no_temp_files(folder: Path) -> None:
    left = [p.name for p in folder.rglob("*.tmp")]
    assert not left, left


# ---- defect 1: an output that is an input ------------------------------------------------------


def test_select_refuses_out_equal_to_pool_and_keeps_the_pool(files, tmp_path, capsys, monkeypatch):
    # the reported bug: `select --pool p.jsonl --out p.jsonl` left p.jsonl holding 1 of 3 records
    pool, target = files
    before = pool.read_bytes()
    assert select(tmp_path, "--pool", pool, "--target", target, "--budget", 1, "--out", pool) == 2
    _one_line_error(capsys, "--out", "is also an input", "--pool")
    assert pool.read_bytes() == before
    assert not (tmp_path / "p.jsonl.meta.json").exists()


@pytest.mark.parametrize("how", ["relative", "symlink", "hardlink", "scores-out", "features"])
def test_select_refuses_every_spelling_of_an_input(files, tmp_path, capsys, monkeypatch, how):
    import numpy as np

    import tunesift.api

    monkeypatch.setattr(tunesift.api, "select", _no_work)
    pool, target = files
    monkeypatch.chdir(tmp_path)
    args = ["--pool", pool, "--target", target, "--budget", 1]
    if how == "relative":
        (tmp_path / "sub").mkdir()
        args += ["--out", "sub/../p.jsonl"]
    elif how == "symlink":
        (tmp_path / "link.jsonl").symlink_to(target)
        args += ["--out", "link.jsonl"]
    elif how == "hardlink":
        os.link(target, tmp_path / "hard.jsonl")
        args += ["--out", "hard.jsonl", "--overwrite"]  # --overwrite never allows eating an input
    elif how == "scores-out":
        args += ["--out", "sel.jsonl", "--scores-out", "t.jsonl"]
    else:
        np.save(tmp_path / "X.npy", np.zeros((3, 2), np.float32))
        np.save(tmp_path / "Y.npy", np.zeros((1, 2), np.float32))
        (tmp_path / "scores.csv").symlink_to(tmp_path / "Y.npy")
        args = ["--pool-features", "X.npy", "--target-features", "Y.npy", "--budget", 1]
        args += ["--out", "s.jsonl", "--scores-out", "scores.csv"]
    before = {p: p.read_bytes() for p in (pool, target)}
    assert select(tmp_path, *args) == 2
    _one_line_error(capsys, "is also an input")
    assert {p: p.read_bytes() for p in (pool, target)} == before


def test_select_never_replaces_a_file_it_did_not_write(files, tmp_path, capsys):
    pool, target = files
    out = tmp_path / "sel.jsonl"
    out.write_text("my notes\n")
    common = ["--pool", pool, "--target", target, "--budget", 1, "--out", out]
    assert select(tmp_path, *common) == 2
    _one_line_error(capsys, "already exists", "--overwrite")
    assert out.read_text() == "my notes\n"
    # --overwrite replaces it; a rerun then replaces its own output without asking
    assert select(tmp_path, *common, "--overwrite") == 0
    first = out.read_bytes()
    assert json.loads(first.splitlines()[0])["rank"] == 1
    assert written_by_tunesift(out) and (tmp_path / LEDGER).exists()
    assert select(tmp_path, *common) == 0
    assert out.read_bytes() == first
    # a user's edit makes it theirs again
    out.write_bytes(first + b'{"text": "added by hand"}\n')
    assert select(tmp_path, *common) == 2
    _one_line_error(capsys, "already exists")
    assert out.read_bytes().endswith(b'"added by hand"}\n')
    _no_temp_files(tmp_path)


def test_select_refuses_the_sidecar_or_an_existing_folder_as_output(files, tmp_path, capsys):
    pool, target = files
    (tmp_path / "sel.jsonl.meta.json").write_text("{}")
    args = ["--pool", pool, "--target", target, "--budget", 1]
    assert select(tmp_path, *args, "--out", tmp_path / "sel.jsonl") == 2
    _one_line_error(capsys, "sidecar", "already exists")
    (tmp_path / "dir.jsonl").mkdir()
    assert select(tmp_path, *args, "--out", tmp_path / "dir.jsonl") == 2
    _one_line_error(capsys, "is a folder")


def test_compare_save_refuses_an_input_before_any_work(files, tmp_path, capsys, monkeypatch):
    import tunesift.comparison

    monkeypatch.setattr(tunesift.comparison, "compare", _no_work)
    pool, target = files
    before = target.read_bytes()
    os.link(target, tmp_path / "t.csv")
    rc = main(["compare", "--pool", str(pool), "--target", str(target), "--budget", "1",
               "--save", str(tmp_path / "t.csv"), "--methods", "random", "-q"])  # fmt: skip
    assert rc == 2
    _one_line_error(capsys, "--save", "is also an input", "--target")
    assert target.read_bytes() == before


def test_compare_save_writes_and_records_its_file(files, tmp_path, capsys):
    pool, target = files
    out = tmp_path / "cmp.json"
    args = ["compare", "--pool", str(pool), "--target", str(target), "--budget", "1",
            "--methods", "random", "--featurizer", "ngrams", "--cache-dir",
            str(tmp_path / "cache"), "-q", "--save", str(out)]  # fmt: skip
    assert main(args) == 0 and json.loads(out.read_text())["budget"]
    assert written_by_tunesift(out)
    assert main(args) == 0  # its own file: replaced without --overwrite
    _no_temp_files(tmp_path)


def test_evaluate_out_refuses_an_input_before_any_work(tmp_path, capsys, monkeypatch):
    import tunesift.evaluate.harness as harness

    monkeypatch.setattr(harness, "evaluate", _no_work)
    monkeypatch.setattr(harness, "read_texts", _no_work)
    rows = [{"text": f"text number {i}", "label": "a" if i % 2 else "b"} for i in range(6)]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    for p in (train, test):
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sel = _jsonl(tmp_path / "sel.jsonl", POOL)
    before = test.read_bytes()
    common = ["evaluate", "--task-train", str(train), "--task-test", str(test), "--base",
              str(sel), "--selection", f"s={sel}", "-q"]  # fmt: skip
    assert main([*common, "--out", str(test)]) == 2
    _one_line_error(capsys, "--out", "is also an input", "--task-test")
    assert main([*common, "--out", str(sel)]) == 2
    _one_line_error(capsys, "--out", "is also an input")
    assert test.read_bytes() == before


def test_bench_refuses_a_folder_of_other_files_before_any_work(tmp_path, capsys, monkeypatch):
    import tunesift.evaluate.bench as bench

    monkeypatch.setattr(bench, "run_bench", _no_work)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.json").write_text("my own results\n")
    assert main(["bench", "--preset", "smoke", "--out", str(mine), "-q"]) == 2
    _one_line_error(capsys, "--out", "did not write", "--overwrite")
    assert (mine / "results.json").read_text() == "my own results\n"
    assert not (mine / LEDGER).exists()


def test_bench_resumes_in_its_own_folder(tmp_path, capsys, monkeypatch):
    import tunesift.evaluate.bench as bench

    calls = []

    def fake_run_bench(preset, out, **kwargs):
        calls.append(out)
        write_text_atomic(out / "results.md", "| table |\n")
        return {"rows": [], "seconds": 0.0, "executed": 0, "reused": 0}

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    out = tmp_path / "bench"
    for _ in range(2):  # the second run finds its own folder (a resumed bench): allowed
        assert main(["bench", "--preset", "smoke", "--out", str(out), "-q"]) == 0
    assert len(calls) == 2 and (out / LEDGER).exists()


def test_tasks_refuses_a_model_file_it_would_overwrite(tmp_path, capsys, monkeypatch):
    import tunesift.tasks

    monkeypatch.setattr(tunesift.tasks, "select_tasks", _no_work)
    monkeypatch.setattr(tunesift.tasks, "validate", _no_work)
    data = tmp_path / "tasks"
    data.mkdir()
    for name in ("a", "b"):
        _jsonl(data / f"{name}.jsonl", POOL)
    target = _jsonl(tmp_path / "target.jsonl", POOL[:1])
    run = tmp_path / "run"
    run.mkdir()
    (run / LEDGER).write_text(json.dumps({"claimed_by": "tunesift tasks"}))
    (run / "model.pt").write_bytes(b"weights")
    common = ["tasks", "--tasks", str(data), "--target", str(target), "-q"]
    assert main([*common, "--model", str(run / "model.pt"), "--out", str(run)]) == 2
    _one_line_error(capsys, "model.pt", "is also an input", "--model")
    assert main([*common, "--out", str(data)]) == 2
    _one_line_error(capsys, "is also an input", "--tasks")
    assert main([*common, "--out", str(data / "run")]) == 2
    _one_line_error(capsys, "inside the input folder")
    assert (run / "model.pt").read_bytes() == b"weights"


def test_corpora_build_refuses_a_folder_of_other_files(tmp_path, capsys, monkeypatch):
    import tunesift.corpora.build as build

    monkeypatch.setattr(build, "build_corpora", _no_work)
    (tmp_path / "pool.jsonl").write_text("mine\n")
    assert main(["corpora", "build", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "--out", "did not write")
    assert (tmp_path / "pool.jsonl").read_text() == "mine\n"


def test_check_outputs_library_guard(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jsonl").write_text("x\n")
    with pytest.raises(OutputError, match="inside the input folder"):
        check_outputs(files=[("out", src / "new.jsonl")], inputs=[("pool", src)])
    with pytest.raises(OutputError, match="name the same file"):
        check_outputs(files=[("a", tmp_path / "o.jsonl"), ("b", tmp_path / "x/../o.jsonl")])
    with pytest.raises(OutputError, match="lies inside the output folder"):
        check_outputs(folders=[("out", tmp_path)], inputs=[("pool", src)])
    check_outputs(files=[("out", tmp_path / "new" / "o.jsonl")], inputs=[("pool", src)])
    assert not (tmp_path / "new").exists()  # checking creates nothing


# ---- hardening 2: atomic writes ----------------------------------------------------------------


def test_a_write_that_fails_midway_leaves_the_previous_file_and_no_temp(tmp_path):
    path = tmp_path / "out.jsonl"
    write_text_atomic(path, "previous\n")
    with pytest.raises(RuntimeError, match="midway"), atomic_open(path) as fh:
        fh.write("partial new content\n" * 1000)
        raise RuntimeError("midway")
    assert path.read_text() == "previous\n"
    _no_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_selection_writers_fail_cleanly_at_every_step(tmp_path, monkeypatch, where):
    """A selection, its scores and its sidecar: an OSError at write, fsync or rename leaves the
    previous files and no temporary file, as a one-line OutputError naming the file."""
    import numpy as np

    from tunesift.selection import Selection

    sel = Selection("random", np.array([2, 0]), np.array([0.5, 0.1, -1.0]), {}, {}, 0, 3, 1)
    paths = [tmp_path / "s.jsonl", tmp_path / "s.parquet", tmp_path / "sc.csv", tmp_path / "m.json"]
    writers = [sel.write, sel.write, sel.write_scores, sel.write_metadata]
    for w, p in zip(writers, paths, strict=True):
        w(p)
    before = {p: p.read_bytes() for p in paths}

    def enospc(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    import tunesift.outputs as outputs

    if where == "write":
        real_fdopen = os.fdopen

        class Failing:
            def __init__(self, fh):
                self.fh = fh

            def __getattr__(self, name):
                return getattr(self.fh, name)

            def write(self, data):
                self.fh.write(data[: len(data) // 2])
                enospc()

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return self.fh.__exit__(*exc)

        monkeypatch.setattr(outputs.os, "fdopen", lambda *a, **k: Failing(real_fdopen(*a, **k)))
    elif where == "fsync":
        monkeypatch.setattr(outputs, "_fsync", enospc)
    else:
        monkeypatch.setattr(outputs.os, "replace", enospc)
    sel2 = Selection("random", np.array([1]), np.array([9.0, 8.0, 7.0]), {}, {}, 1, 3, 1)
    for w, p in zip([sel2.write, sel2.write, sel2.write_scores, sel2.write_metadata], paths,
                    strict=True):  # fmt: skip
        with pytest.raises(OutputError) as err:
            w(p)
        assert str(p) in str(err.value) and "\n" not in str(err.value)
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in paths} == before
    _no_temp_files(tmp_path)


def test_atomic_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644


def test_record_outputs_tolerates_a_damaged_ledger(tmp_path):
    (tmp_path / LEDGER).write_text("{not json")
    out = write_text_atomic(tmp_path / "o.txt", "x")
    assert not written_by_tunesift(out)
    record_outputs([out])
    assert written_by_tunesift(out)


# ---- hardening 6: read-only folder, full disk, no permission -----------------------------------


def _mount_tmpfs(folder: Path, size: str = "256k") -> bool:
    """Mount a small tmpfs at ``folder`` when this machine allows it (root, mount permitted)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                       capture_output=True)  # fmt: skip
    return r.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk):
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission); the simulated "
                    "ENOSPC tests cover the same code path")  # fmt: skip
    yield disk
    _umount(disk)


def _select_twice_to(tmp_path: Path, files, out: Path) -> bytes:
    pool, target = files
    assert select(tmp_path, "--pool", pool, "--target", target, "--budget", 2, "--out", out) == 0
    return out.read_bytes()


def test_full_disk_real_tmpfs(files, tmp_path, capsys, small_disk):
    out = small_disk / "sel.jsonl"
    previous = _select_twice_to(tmp_path, files, out)
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as fh:  # fill the disk to the last block
        with pytest.raises(OSError) as full:
            while True:
                fh.write(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    capsys.readouterr()
    pool, target = files
    rc = select(tmp_path, "--pool", pool, "--target", target, "--budget", 3, "--out", out)
    assert rc == 2
    _one_line_error(capsys, "sel.jsonl", "no space left")
    assert out.read_bytes() == previous
    _no_temp_files(small_disk)
    # the feature cache (elsewhere) is intact: with room again, the same run completes
    filler.unlink()
    assert select(tmp_path, "--pool", pool, "--target", target, "--budget", 3, "--out", out) == 0
    assert len(out.read_text().splitlines()) == 3


def test_read_only_folder_real_mount(files, tmp_path, capsys, small_disk, monkeypatch):
    import tunesift.api

    out = small_disk / "sel.jsonl"
    previous = _select_twice_to(tmp_path, files, out)
    r = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot remount read-only: {r.stderr.decode().strip()}")
    monkeypatch.setattr(tunesift.api, "select", _no_work)  # refused before any work
    pool, target = files
    capsys.readouterr()
    rc = select(tmp_path, "--pool", pool, "--target", target, "--budget", 3, "--out", out)
    assert rc == 2
    _one_line_error(capsys, "--out", "ead-only file system")
    assert out.read_bytes() == previous


def test_full_disk_simulated_keeps_output_and_cache(files, tmp_path, capsys, monkeypatch):
    """ENOSPC while writing the selection: one line, exit 2, the previous selection intact, no
    temporary file, and the feature cache still serves the rerun (nothing recomputed)."""
    import tunesift.features.store as store
    import tunesift.outputs as outputs

    out = tmp_path / "sel.jsonl"
    previous = _select_twice_to(tmp_path, files, out)
    real_fsync = os.fsync

    def enospc(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "_fsync", enospc)
    pool, target = files
    capsys.readouterr()
    rc = select(tmp_path, "--pool", pool, "--target", target, "--budget", 3, "--out", out)
    assert rc == 2
    _one_line_error(capsys, "sel.jsonl", "no space left")
    assert out.read_bytes() == previous
    _no_temp_files(tmp_path)
    monkeypatch.setattr(outputs, "_fsync", real_fsync)
    cache_files = sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file())
    stamps = {p: p.stat().st_mtime_ns for p in cache_files}
    monkeypatch.setattr(store, "featurize", store.featurize)  # the real one, for clarity
    assert select(tmp_path, "--pool", pool, "--target", target, "--budget", 3, "--out", out) == 0
    assert len(out.read_text().splitlines()) == 3
    assert {p: p.stat().st_mtime_ns for p in cache_files} == stamps  # reused, not rewritten


def test_output_under_a_file_or_without_permission(files, tmp_path, capsys, monkeypatch):
    import tunesift.api

    monkeypatch.setattr(tunesift.api, "select", _no_work)
    pool, target = files
    args = ["--pool", pool, "--target", target, "--budget", 1]
    # a path under a file: refused even for root, before any work
    assert select(tmp_path, *args, "--out", tmp_path / "p.jsonl" / "sel.jsonl") == 2
    _one_line_error(capsys, "--out", "is a file, not a folder")
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod does not stop writes (the read-only mount test and "
                    "the path-under-a-file case above cover it)")  # fmt: skip
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert select(tmp_path, *args, "--out", locked / "sel.jsonl") == 2
        _one_line_error(capsys, "--out", "ermission denied")
    finally:
        locked.chmod(0o755)
