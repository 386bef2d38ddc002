"""``tunesift bench``: the method x budget x seed grid on labeled targets from the real corpora."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tunesift.evaluate.bench import PRESETS

    p = sub.add_parser(
        "bench",
        help="benchmark methods on labeled targets built from the real corpora",
        description="Build labeled target tasks from the Debian corpora, select with every "
        "method at every budget and seed, evaluate each selection beside the no-pre-fine-tuning "
        "baseline, and write results.csv, results.json and results.md.",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument(
        "--tasks", metavar="A,B", help="only these of the preset's task sources (e.g. fortunes)"
    )
    p.add_argument("--methods", metavar="A,B", help="override the preset's methods")
    p.add_argument(
        "--modes", metavar="A,B", help="override the preset's modes (fast, encoder, causal)"
    )
    p.add_argument("--out", type=Path, default=Path("runs/bench"), help="output folder")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument(
        "--cache-dir", type=Path, help="feature cache (default: $XDG_CACHE_HOME/tunesift)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_bench_cmd)


def run_bench_cmd(args: argparse.Namespace) -> int:
    from tunesift.evaluate.bench import PRESETS, restrict, run_bench

    preset = restrict(
        PRESETS[args.preset], tasks=_csv(args.tasks), methods=_csv(args.methods),
        modes=_csv(args.modes),
    )  # fmt: skip
    result = run_bench(
        preset,
        args.out,
        cache_dir=args.cache_dir,
        device=args.device,
        progress=None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True)),
    )
    print((args.out / "results.md").read_text(), end="")
    print(f"{len(result['rows'])} runs in {result['seconds']:.0f} s; wrote {args.out}/results.csv, "
          f"results.json, results.md")  # fmt: skip
    return 0


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None
