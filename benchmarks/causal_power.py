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

import numpy as np

BASELINE = "no-pre-fine-tuning"
TARGETS = {"perplexity": 1.0, "accuracy": 3.0}  # half-widths: % of untouched, points


def _runs(tdir: Path) -> dict[tuple[str, int | None, int], dict]:
    out = {}
    for f in tdir.glob("*-causal-*.json"):
        d = json.loads(f.read_text())
        out[(d["method"], d["budget"], d["seed"])] = d
    return out


def _ppl(nll: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Corpus perplexity per seed (rows) from per-item NLL sums and token counts."""
    return np.exp(nll.sum(axis=-1) / tokens.sum(axis=-1))


def item_floor(got: list[dict], ref: list[dict], untouched: float, draws: int = 2000):
    """Half-widths from resampling the test items only (same draw for every seed): perplexity
    in % of ``untouched``, accuracy in points."""

    def stack(runs, key):
        return np.array([r["per_item"][key] for r in runs], dtype=float)

    gn, gt, rn, rt = (stack(r, k) for r in (got, ref) for k in ("test_nll", "test_tokens"))
    gc, rc = stack(got, "correct"), stack(ref, "correct")
    rng = np.random.default_rng(0)
    n = gn.shape[1]
    ppl, acc = [], []
    for _ in range(draws):
        i = rng.integers(0, n, n)
        ppl.append((_ppl(gn[:, i], gt[:, i]) - _ppl(rn[:, i], rt[:, i])).mean() / untouched * 100)
        acc.append((gc[:, i].mean() - rc[:, i].mean()) * 100)
    half = [float(np.subtract(*np.percentile(x, [97.5, 2.5])) / 2) for x in (ppl, acc)]
    return half[0], half[1], n


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
            ppl = [(g["metrics"]["perplexity"] - r["metrics"]["perplexity"]) / untouched * 100
                   for g, r in zip(got, ref, strict=True)]  # fmt: skip
            acc = [100 * (g["metrics"]["accuracy"] - r["metrics"]["accuracy"])
                   for g, r in zip(got, ref, strict=True)]  # fmt: skip
            if not all(r.get("per_item", {}).get("correct") for r in got + ref):
                print(f"{tdir.name:12s} {m:8s} k={args.budget}: runs without per-item scores")
                continue
            fp, fa, n_items = item_floor(got, ref, untouched)
            parts = []
            for name, diffs, floor in (("perplexity %", ppl, fp), ("accuracy pts", acc, fa)):
                s = statistics.stdev(diffs)
                parts.append(
                    f"{name} mean {statistics.mean(diffs):+.2f} s={s:.2f} items' floor "
                    f"±{floor:.2f} -> ±{TARGETS[name.split()[0]]:g}: "
                    f"{_seeds_needed(s, floor, TARGETS[name.split()[0]])}"
                )
            print(f"{tdir.name:12s} {m:8s} k={args.budget} seeds={len(seeds)} items={n_items}  "
                  + "  |  ".join(parts))  # fmt: skip


if __name__ == "__main__":
    main()
