"""``tunesift compare``: several methods, one budget, shared features, one table."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesift.errors import TunesiftError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tunesift.cli.options import (
        add_budget_options,
        add_engine_options,
        add_input_options,
        add_overwrite_option,
        add_report_option,
        method_list,
    )

    p = sub.add_parser(
        "compare",
        help="run several selection methods on shared features and compare them",
        description="Run several methods on the same pool, target, features and budget, and "
        "print one table: time, tokens, KL reduction, OT cost, duplicates, composition, overlaps.",
    )
    add_input_options(p)
    add_budget_options(p)
    p.add_argument(
        "--methods",
        default="gotd,dsir,rds,kmq,d4,ccs,zipfit,random,random-balanced",
        help=f"comma-separated methods (from: {method_list()}; default: %(default)s; the others, "
        "e.g. the model-based ones that train a scoring LM, by name)",
    )
    p.add_argument(
        "--featurizer", default="minilm", help="features shared by the methods (default: minilm)"
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="METHOD.NAME=VALUE",
        help="a method's hyper-parameter (repeatable), e.g. dsir.hash=sha256",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--save", type=Path, metavar="FILE", help="also write the results (.json, .csv)")
    add_report_option(p)
    add_overwrite_option(p)
    p.add_argument(
        "--cache-dir", type=Path, help="feature cache (default: $XDG_CACHE_HOME/tunesift)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_engine_options(p)
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from tunesift.cli.options import (
        check_report_path,
        engine_from_args,
        guard_outputs,
        input_paths,
        parse_method_params,
    )
    from tunesift.comparison import compare, format_comparison
    from tunesift.outputs import record_outputs

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise TunesiftError("--methods names no method")
    params = parse_method_params(args.param, "compare")
    if not args.pool or not args.target:
        raise TunesiftError("compare reads texts: give --pool and --target files")
    if args.save is not None and args.save.suffix.lower() not in (".json", ".csv"):
        raise TunesiftError(f"--save must end with .json or .csv, got {args.save.name}")
    check_report_path(args)
    if args.save is not None or args.report is not None:
        guard_outputs(args, [("--save", args.save), ("--report", args.report)], input_paths(args))
    result = compare(
        args.pool,
        args.target,
        methods,
        args.budget,
        budget_tokens=args.budget_tokens,
        max_per_source=args.max_per_source,
        method_params=params,
        featurizer=args.featurizer,
        seed=args.seed,
        device=args.device,
        cache_dir=args.cache_dir,
        show_progress=not args.quiet,
        text_field=args.text_field,
        id_field=args.id_field,
        source_field=args.source_field,
        text_template=args.text_template,
        on_bad=args.on_bad,
        engine=engine_from_args(args),
    )
    print(format_comparison(result))
    if args.save:
        print(f"wrote {result.write(args.save)}")
        record_outputs([args.save], command="tunesift compare")
    if args.report:
        from tunesift.report.compare_report import write_compare_report

        write_compare_report(args.report, result, seed=args.seed)
        record_outputs([args.report], command="tunesift compare")
        print(f"wrote {args.report}")
    return 0
