"""Seeds a causal bench needs for a given interval width, from the runs it already has.

    python benchmarks/causal_power.py runs/bench-causal/runs [--budget 100] [--against random]

For each target and method, the per-seed paired difference to the reference run (same seed):
perplexity in % of the reference's, accuracy in points; their standard deviation s over seeds,
and the seeds a 95% interval of ±1% (perplexity) or ±3 points (accuracy) would need if the
seeds' spread dominates, n = (1.96 s / width)² (a normal approximation that ignores the test
items' share of the variance, which the bench's bootstrap adds).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, help="a bench's runs/ folder (one subfolder per target)")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--against", default="random", help="the reference method")
    args = ap.parse_args()
    for tdir in sorted(p for p in args.runs.iterdir() if p.is_dir()):
        rows = {}
        for f in tdir.glob("*-causal-*.json"):
            d = json.loads(f.read_text())
            rows[(d["method"], d["budget"], d["seed"])] = d["metrics"]
        methods = sorted({m for m, b, _ in rows if b == args.budget and m != args.against})
        for m in methods:
            seeds = sorted(s for mm, b, s in rows if (mm, b) == (m, args.budget)
                           and (args.against, args.budget, s) in rows)  # fmt: skip
            if len(seeds) < 2:
                continue
            ref = [rows[(args.against, args.budget, s)] for s in seeds]
            got = [rows[(m, args.budget, s)] for s in seeds]
            ppl = [
                100 * (g["perplexity"] / r["perplexity"] - 1) for g, r in zip(got, ref, strict=True)
            ]
            acc = [100 * (g["accuracy"] - r["accuracy"]) for g, r in zip(got, ref, strict=True)]
            sp, sa = statistics.stdev(ppl), statistics.stdev(acc)
            print(
                f"{tdir.name:12s} {m:8s} k={args.budget} seeds={len(seeds)}  "
                f"perplexity % {[round(x, 2) for x in ppl]} s={sp:.2f} "
                f"-> {math.ceil((1.96 * sp) ** 2)} seeds for ±1%  |  "
                f"accuracy pts {[round(x, 2) for x in acc]} s={sa:.2f} "
                f"-> {math.ceil((1.96 * sa / 3) ** 2)} seeds for ±3"
            )


if __name__ == "__main__":
    main()
