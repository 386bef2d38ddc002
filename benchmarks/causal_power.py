"""What interval a causal bench can reach, and what limits it, from the runs it already has.

    python benchmarks/causal_power.py runs/bench-causal/runs [--budget 100] [--against random]

For each target and method, the paired difference to the reference run on the same seeds, in
the issue-14 yardsticks: perplexity in % of the untouched model's (no pre-fine-tuning)
perplexity, accuracy in points. Two sources of variance make up the bench's 95% interval:

- the seeds (each draws a target sample, picks and a training order): their standard deviation
  s; alone they give a half-width t·s/√n that shrinks with more seeds;
- the test items: every seed scores the same fixed test split, so resampling the items moves
  every seed's difference at once; the bootstrap over items alone (seeds fixed, 2,000 draws) is
  a floor that no number of seeds removes, only a larger test split (it shrinks with √items).

Seeds needed for a half-width w: n = (1.96 s)² / (w² − floor²) when the floor is below w
(the two parts add in quadrature, a normal approximation); else more test items first.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

BASELINE = "no-pre-fine-tuning"
PPL_WIDTH, ACC_WIDTH = 1.0, 3.0  # issue 14's half-widths: % of the untouched perplexity, points


def _runs(tdir: Path) -> dict[tuple[str, int | None, int], dict]:
    out = {}
    for f in tdir.glob("*-causal-*.json"):
        d = json.loads(f.read_text())
        out[(d["method"], d["budget"], d["seed"])] = d
    return out


def item_floor(got: list[dict], ref: list[dict], untouched: float) -> tuple[float, float, int]:
    """Half-widths of the bench's bootstrap with the seeds held fixed (the items resampled
    only): perplexity in % of ``untouched``, accuracy in points; and the number of items."""
    from tunesift.evaluate.stats import mean_difference, perplexity_difference

    def items(runs: list[dict], key: str) -> list[list[float]]:
        return [r["per_item"][key] for r in runs]

    ppl = perplexity_difference(*(items(r, k) for r in (got, ref) for k in ("test_nll", "test_tokens")),
                                resample_seeds=False).absolute  # fmt: skip
    acc = mean_difference(items(got, "correct"), items(ref, "correct"), resample_seeds=False)
    return ((ppl.high - ppl.low) / 2 / untouched * 100, (acc.high - acc.low) / 2 * 100,
            len(got[0]["per_item"]["correct"]))  # fmt: skip


def _seeds_needed(s: float, floor: float, width: float) -> str:
    def seeds(f: float) -> int:
        return math.ceil((1.96 * s) ** 2 / (width**2 - f**2))

    if floor < width:
        return f"{seeds(floor)} seeds"
    grow = math.ceil((floor / width) ** 2 * 10) / 10
    return f"over ±{width:g} with any seeds (>{grow:g}x the items); 4x the items: {seeds(floor / 2)} seeds"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, help="a bench's runs/ folder (one subfolder per target)")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--against", default="random", help="the reference method")
    args = ap.parse_args()
    for tdir in sorted(p for p in args.runs.iterdir() if p.is_dir()):
        runs = _runs(tdir)
        base = [d for (m, _, _), d in runs.items() if m == BASELINE]
        if not base:
            continue
        untouched = base[0]["metrics"]["perplexity"]  # one model, the same for every seed
        methods = sorted({m for m, b, _ in runs if b == args.budget and m != args.against})
        for m in methods:
            seeds = sorted(s for mm, b, s in runs if (mm, b) == (m, args.budget)
                           and (args.against, args.budget, s) in runs)  # fmt: skip
            if len(seeds) < 2:
                continue
            got = [runs[(m, args.budget, s)] for s in seeds]
            ref = [runs[(args.against, args.budget, s)] for s in seeds]
            if not all(r.get("per_item", {}).get("correct") for r in got + ref):
                print(f"{tdir.name:12s} {m:8s} k={args.budget}: runs without per-item scores")
                continue
            ppl = [(g["metrics"]["perplexity"] - r["metrics"]["perplexity"]) / untouched * 100
                   for g, r in zip(got, ref, strict=True)]  # fmt: skip
            acc = [100 * (g["metrics"]["accuracy"] - r["metrics"]["accuracy"])
                   for g, r in zip(got, ref, strict=True)]  # fmt: skip
            fp, fa, n_items = item_floor(got, ref, untouched)
            parts = []
            for name, diffs, floor, width in (("perplexity %", ppl, fp, PPL_WIDTH),
                                              ("accuracy pts", acc, fa, ACC_WIDTH)):  # fmt: skip
                s = statistics.stdev(diffs)
                parts.append(
                    f"{name} mean {statistics.mean(diffs):+.2f} s={s:.2f} items' floor "
                    f"±{floor:.2f} -> ±{width:g}: {_seeds_needed(s, floor, width)}"
                )
            print(f"{tdir.name:12s} {m:8s} k={args.budget} seeds={len(seeds)} items={n_items}  "
                  + "  |  ".join(parts))  # fmt: skip


if __name__ == "__main__":
    main()
