"""``tunesift evaluate``: pre-fine-tune on selections, measure the target, beside a baseline."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tunesift.errors import TunesiftError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tunesift.cli.options import add_overwrite_option, add_report_option

    p = sub.add_parser(
        "evaluate",
        help="pre-fine-tune on selections and measure the target (with a no-pre-fine-tuning baseline)",
        description="Evaluate selections on a labeled target: fast (n-gram perplexity, seconds), "
        "encoder (masked-LM pre-fine-tuning, then a classifier) or causal (LoRA on SmolLM2-135M, "
        "then test perplexity and zero-shot accuracy) mode; mean ± std over seeds.",
    )
    p.add_argument(
        "--selection",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a selection to evaluate (repeatable), e.g. gotd=runs/gotd/selected.jsonl",
    )
    p.add_argument("--task-train", required=True, metavar="FILE", help="labeled target train split")
    p.add_argument("--task-test", required=True, metavar="FILE", help="labeled target test split")
    p.add_argument("--label-field", default="label", help="the label field (default: label)")
    p.add_argument("--text-field", default="text", help="the text field (default: text)")
    p.add_argument("--mode", choices=["fast", "encoder", "causal"], default="fast")
    p.add_argument(
        "--base",
        nargs="+",
        default=[],
        metavar="FILE",
        help="fast mode: the corpus standing for pre-training (usually the pool)",
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--out", type=Path, help="write the full report as JSON")
    add_report_option(p)
    add_overwrite_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from tunesift.cli.options import check_report_path, guard_outputs
    from tunesift.evaluate.harness import evaluate, load_task, read_texts
    from tunesift.outputs import record_outputs, write_json_atomic

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise TunesiftError(f"--seeds takes comma-separated integers, got {args.seeds!r}") from None
    selections: dict[str, Sequence[str]] = {}
    for spec in args.selection:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise TunesiftError(f"--selection takes NAME=FILE, got {spec!r}")
        if name in selections:
            raise TunesiftError(f"selection name {name!r} given twice")
        selections[name] = [path]
    if args.mode == "fast" and not args.base:
        raise TunesiftError("fast mode needs --base: the corpus standing for pre-training")
    check_report_path(args)
    if args.out is not None or args.report is not None:
        guard_outputs(
            args,
            [("--out", args.out), ("--report", args.report)],
            [
                *((f"--selection {name}", paths[0]) for name, paths in selections.items()),
                ("--task-train", args.task_train),
                ("--task-test", args.task_test),
                *(("--base", b) for b in args.base),
            ],
        )
    selections = {name: read_texts(paths, args.text_field) for name, paths in selections.items()}
    task = load_task(
        args.task_train, args.task_test, text_field=args.text_field, label_field=args.label_field
    )
    base = read_texts(args.base, args.text_field) if args.base else None
    report = evaluate(
        selections,
        task,
        mode=args.mode,
        base=base,
        seeds=seeds,
        progress=None if args.quiet else (lambda m: print(m, file=sys.stderr)),
    )
    report.environment["command"] = "tunesift " + " ".join(map(str, args.argv))
    print(report.table())
    if args.out:
        write_json_atomic(args.out, report.to_dict(), indent=2)
        record_outputs([args.out], command="tunesift evaluate")
        print(f"wrote {args.out}")
    if args.report:
        from tunesift.report.bench_report import build_evaluate_report

        # through JSON, as --out holds it, so `tunesift report` of that file gives the same page
        saved = json.loads(json.dumps(report.to_dict()))
        build_evaluate_report(saved).write(args.report)
        record_outputs([args.report], command="tunesift evaluate")
        print(f"wrote {args.report}")
    return 0
