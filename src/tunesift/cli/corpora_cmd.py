"""``tunesift corpora build|list``: real public text from Debian packages, as pool and target files."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesift.errors import TunesiftError

TOP_LABELS = 10
#: the files ``corpora build`` writes into its output folder
BUILD_FILES = ("pool.jsonl", "target.jsonl", "heldout.jsonl", "build.json")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``corpora`` with its actions ``build`` and ``list`` to the top-level subparsers."""
    p = subparsers.add_parser(
        "corpora",
        help="build benchmark corpora from Debian packages",
        description="Real public text installed from Debian packages (fortunes, GCIDE, WordNet, "
        "FOLDOC, Jargon File, Devil's Dictionary, KJV Bible, Perl FAQ, package descriptions).",
    )
    p.set_defaults(func=run)
    csub = p.add_subparsers(dest="corpora_command", required=True, metavar="ACTION")
    b = csub.add_parser(
        "build",
        help="write pool.jsonl, target.jsonl, heldout.jsonl and build.json into a folder",
        description="Hold a SOURCE:LABEL slice out of the corpora (a sample of it is the target, "
        "the rest heldout.jsonl) and write a pool of the other records, capped per source.",
    )
    b.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    b.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a folder holding files tunesift did not write (replacing pool.jsonl, "
        "target.jsonl, heldout.jsonl and build.json there)",
    )
    b.add_argument(
        "--sources", metavar="A,B,C", help="comma-separated sources (default: all; see `list`)"
    )
    b.add_argument(
        "--max-per-source",
        type=int,
        default=2000,
        metavar="N",
        help="pool records per source, 0 = all (default 2000)",
    )
    b.add_argument(
        "--target",
        default="gcide:Zool.",
        metavar="SOURCE:LABEL",
        help="the slice held out of the pool; a sample of it is the target (default gcide:Zool.)",
    )
    b.add_argument(
        "--target-size", type=int, default=500, metavar="N", help="target sample size (default 500)"
    )
    b.add_argument("--seed", type=int, default=0, help="shuffling seed (default 0)")
    b.add_argument(
        "--min-chars",
        type=int,
        default=20,
        metavar="N",
        help="drop texts shorter than this (default 20)",
    )
    lst = csub.add_parser(
        "list",
        help="the sources, whether installed, and their largest labels",
        description=f"Each source: installed or not, its records (of at least 20 characters, as "
        f"`build` counts them), and its {TOP_LABELS} largest labels.",
    )
    lst.add_argument("names", nargs="*", metavar="SOURCE", help="only these sources")


def run(args: argparse.Namespace) -> int:
    """Run ``corpora build`` or ``corpora list``; returns the exit status."""
    if args.corpora_command == "build":
        return run_build(args)
    return run_list(args)


def run_build(args: argparse.Namespace) -> int:
    from tunesift.cli.options import guard_outputs
    from tunesift.corpora.build import DEFAULT_SOURCES, build_corpora
    from tunesift.outputs import record_outputs

    if args.max_per_source < 0:
        raise TunesiftError(f"--max-per-source must be 0 (all) or more, got {args.max_per_source}")
    written = [args.out / name for name in BUILD_FILES]
    guard_outputs(args, [("--out", f) for f in written], [], folders=[("--out", args.out)])
    sources = (
        tuple(s.strip() for s in args.sources.split(",") if s.strip())
        if args.sources
        else DEFAULT_SOURCES
    )
    built = build_corpora(
        args.out,
        sources=sources,
        max_per_source=args.max_per_source or None,
        target=args.target,
        target_size=args.target_size,
        seed=args.seed,
        min_chars=args.min_chars,
    )
    record_outputs(written, command="tunesift corpora build")
    print(f"pool: {built.pool_count:,} records -> {built.pool_path}")
    for name, n in built.counts.items():
        labelled = sum(c for label, c in built.label_counts[name].items() if label)
        print(f"  {name:<10} {n:>7,}  ({labelled:,} labelled)")
    print(f"target: {built.target_count:,} records of {args.target} -> {built.target_path}")
    print(
        f"held out: {built.heldout_count:,} more of {args.target}, never in the pool "
        f"-> {built.heldout_path}"
    )
    print(f"exact duplicates dropped from the pool: {built.duplicates_dropped:,}")
    print(f"details: {built.info_path} ({built.seconds:.1f}s)")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from tunesift.corpora.build import SOURCES, get_source, label_counts

    names = args.names or list(SOURCES)
    for name in names:
        src = get_source(name)
        if not src.available():
            print(f"{name}: not installed ({src.install})")
            continue
        labels = label_counts(name, min_chars=20)
        total = sum(labels.values())
        labelled = total - labels.get("", 0)
        print(
            f"{name}: {total:,} records, {labelled:,} labelled, {len(labels) - ('' in labels)} labels"
        )
        for label, n in sorted(
            ((lab, n) for lab, n in labels.items() if lab), key=lambda kv: (-kv[1], kv[0])
        )[:TOP_LABELS]:
            print(f"  {label:<24} {n:>7,}")
    return 0
