"""``tunesift report RUN_DIR|FILE --out report.html``: the HTML report of a finished run, from its
saved outputs (features come from the cache, never recomputed)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tunesift.cli.options import add_overwrite_option

    p = sub.add_parser(
        "report",
        help="write the self-contained HTML report of a finished run",
        description="Write the HTML report of a finished select, compare, bench, evaluate or "
        "tasks run from what it saved: a select sidecar (selected.jsonl.meta.json) or its "
        "folder, a compare --save .json, an evaluate --out .json, a bench or tasks folder.",
    )
    p.add_argument("run", type=Path, metavar="RUN_DIR|FILE", help="the run's outputs")
    p.add_argument(
        "--out", type=Path, required=True, metavar="PATH.html", help="the report to write"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the report's point samples (default 0)"
    )
    add_overwrite_option(p)
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from tunesift.cli.options import check_report_path, guard_outputs
    from tunesift.outputs import record_outputs
    from tunesift.report.runs import run_kind, write_run_report

    args.report = args.out
    check_report_path(args)
    # the files read, not the folder: a report may go into the run's own folder
    _, read = run_kind(args.run)
    inputs = [read / n for n in ("selection.json", "validation.json")] if read.is_dir() else [read]
    guard_outputs(args, [("--out", args.out)], [("RUN_DIR|FILE", f) for f in inputs])
    t0 = time.perf_counter()
    kind, page = write_run_report(args.run, args.out, seed=args.seed)
    record_outputs([args.out], command="tunesift report")
    seconds = time.perf_counter() - t0
    size = args.out.stat().st_size
    print(
        f"tunesift report: {kind} run, {len(page.figures)} figures"
        + (f", not shown: {', '.join(sorted(page.missing))}" if page.missing else "")
        + f"; {size / 1024:,.0f} KiB in {seconds:.1f} s"
    )
    print(f"wrote {args.out}")
    return 0
