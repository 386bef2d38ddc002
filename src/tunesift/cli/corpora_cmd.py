"""``tunesift corpora build|list``: real public text from Debian packages, as pool and target files."""

from __future__ import annotations

import argparse
from collections import Counter


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpora", help="build benchmark corpora from Debian packages")
    csub = p.add_subparsers(dest="corpora_command", required=True, metavar="ACTION")
    b = csub.add_parser("build", help="write pool.jsonl, target.jsonl, heldout.jsonl into a folder")
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--sources", help="comma-separated sources (default: all)")
    b.add_argument(
        "--max-per-source", type=int, default=2000, help="cap per source, 0 = all (default 2000)"
    )
    b.add_argument(
        "--target",
        default="gcide:Zool.",
        help="SOURCE:LABEL slice held out as the target (default gcide:Zool.)",
    )
    b.add_argument("--target-size", type=int, default=500, help="target sample size (default 500)")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=run_build)
    lst = csub.add_parser("list", help="the sources, whether installed, and their largest labels")
    lst.set_defaults(func=run_list)


def run_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tunesift.corpora.build import DEFAULT_SOURCES, build_corpora

    sources = tuple(s.strip() for s in args.sources.split(",")) if args.sources else DEFAULT_SOURCES
    built = build_corpora(
        Path(args.out),
        sources=sources,
        max_per_source=args.max_per_source or None,
        target=args.target,
        target_size=args.target_size,
        seed=args.seed,
    )
    print(f"pool: {sum(built.counts.values()):,} records -> {built.pool_path}")
    for name, n in built.counts.items():
        print(f"  {name:<10} {n:>7,}")
    print(f"target: {built.target_count:,} records of {args.target} -> {built.target_path}")
    print(
        f"held out: {built.heldout_count:,} more of that slice (never in the pool) -> {built.heldout_path}"
    )
    print(f"exact duplicates dropped: {built.duplicates_dropped:,}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from tunesift.corpora.build import SOURCES

    for name, src in SOURCES.items():
        if not src.available():
            print(f"{name}: not installed (apt-get install {' '.join(src.packages)})")
            continue
        labels = Counter(r["label"] for r in src.read())
        top = ", ".join(f"{lab or '(none)'} {n:,}" for lab, n in labels.most_common(10))
        print(f"{name}: {sum(labels.values()):,} records; labels: {top}")
    return 0
