"""Issue 16, acceptance 3: the report of a large selection is small and cheap.

    python benchmarks/report_size.py --rows 50000 --work /tmp/report-size
    python benchmarks/report_size.py --rows 1000000 --work /tmp/report-size-1m   # the target

Builds a synthetic pool of ``--rows`` JSONL records (short texts from ``--sources`` sources, with
a seeded mix of lengths) and a target of ``--target`` records, with precomputed features
(``--dim``-d float32 ``.npy``: a Gaussian blob per source, the target near two of them). Then,
in this process, through the command line:

1. ``tunesift select --pool-features ... --scores-out scores.parquet`` (GOT-D, ``--budget``):
   timed, the selection's own time;
2. ``tunesift report RUN_DIR --out report.html``: timed, and its size in bytes.

Acceptance: the report is under 5 MB and takes under 10% of the selection's time. The JSON line
printed at the end (and written to ``--json``) holds both wall times, both CPU times (this
process, all threads: the fairer measure on a shared machine), their ratios, both verdicts
(``under_10pct``: wall, ``under_10pct_cpu``: CPU) and the size. The exit status is 1 when the
size or the wall-time ratio misses its bound: on a busy machine read the CPU verdict.
The data is written once per ``--work`` folder and reused by a rerun of the same size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
         "sigma tau upsilon phi chi psi omega").split()  # fmt: skip


def make_data(work: Path, rows: int, target: int, dim: int, sources: int, seed: int) -> None:
    """Pool and target JSONL with aligned .npy features (skipped when already there)."""
    done = work / "data.json"
    want = {"rows": rows, "target": target, "dim": dim, "sources": sources, "seed": seed}
    if done.exists() and json.loads(done.read_text()) == want:
        return
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(sources, dim)).astype(np.float32)
    src = rng.integers(0, sources, size=rows)
    x = np.lib.format.open_memmap(work / "X.npy", mode="w+", dtype=np.float32, shape=(rows, dim))
    lengths = rng.integers(3, 60, size=rows)
    with open(work / "pool.jsonl", "w", encoding="utf-8") as fh:
        for start in range(0, rows, 100_000):
            stop = min(start + 100_000, rows)
            x[start:stop] = centres[src[start:stop]] + rng.normal(size=(stop - start, dim))
            for i in range(start, stop):
                words = rng.choice(WORDS, size=int(lengths[i]))
                fh.write(json.dumps({"text": " ".join(words), "source": f"s{src[i]}"}) + "\n")
    x.flush()
    del x
    near = rng.integers(0, 2, size=target)
    y = centres[near] + 0.8 * rng.normal(size=(target, dim))
    np.save(work / "Y.npy", y.astype(np.float32))
    with open(work / "target.jsonl", "w", encoding="utf-8") as fh:
        for _ in range(target):
            words = rng.choice(WORDS[:8], size=int(rng.integers(5, 30)))
            fh.write(json.dumps({"text": " ".join(words)}) + "\n")
    done.write_text(json.dumps(want))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=50_000, help="pool rows (the issue: 1,000,000)")
    ap.add_argument("--target", type=int, default=1000, help="target rows")
    ap.add_argument("--dim", type=int, default=64, help="feature width")
    ap.add_argument("--sources", type=int, default=8)
    ap.add_argument("--budget", type=int, default=None, help="documents (default: rows / 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/report-size"))
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tunesift.cli.main import main as tunesift

    work = args.work
    t0 = time.perf_counter()
    make_data(work, args.rows, args.target, args.dim, args.sources, args.seed)
    t_data = time.perf_counter() - t0
    run = work / f"run-{args.rows}"
    budget = args.budget or max(args.rows // 20, 1)
    select = [
        "select", "--pool", str(work / "pool.jsonl"), "--target", str(work / "target.jsonl"),
        "--pool-features", str(work / "X.npy"), "--target-features", str(work / "Y.npy"),
        "--budget", str(budget), "--out", str(run / "selected.jsonl"),
        "--scores-out", str(run / "scores.parquet"), "--seed", str(args.seed), "-q",
        "--overwrite",
    ]  # fmt: skip
    t0, c0 = time.perf_counter(), time.process_time()
    assert tunesift(select) == 0
    t_select, c_select = time.perf_counter() - t0, time.process_time() - c0
    report = run / "report.html"
    t0, c0 = time.perf_counter(), time.process_time()
    assert tunesift(["report", str(run), "--out", str(report), "--overwrite"]) == 0
    t_report, c_report = time.perf_counter() - t0, time.process_time() - c0
    size = report.stat().st_size
    result = {
        "rows": args.rows, "target": args.target, "dim": args.dim, "budget": budget,
        "select_s": round(t_select, 2), "report_s": round(t_report, 2),
        "report_share": round(t_report / t_select, 4), "select_cpu_s": round(c_select, 2),
        "report_cpu_s": round(c_report, 2), "report_cpu_share": round(c_report / c_select, 4),
        "report_bytes": size,
        "under_5MB": size < 5_000_000, "under_10pct": t_report < 0.1 * t_select,
        "under_10pct_cpu": c_report < 0.1 * c_select,
        "data_s": round(t_data, 1), "machine": platform.platform(),
        "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip
    line = json.dumps(result)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")
    return 0 if result["under_5MB"] and result["under_10pct"] else 1


if __name__ == "__main__":
    sys.exit(main())
