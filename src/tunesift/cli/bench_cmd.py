"""``tunesift bench``: the method x budget x seed grid on labeled targets from the real corpora."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tunesift.errors import TunesiftError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tunesift.cli.options import add_report_option
    from tunesift.evaluate.bench import PRESETS

    p = sub.add_parser(
        "bench",
        help="benchmark methods on labeled targets built from the real corpora",
        description="Build labeled target tasks from the Debian corpora (or take yours: "
        "--task-train/--task-test/--pool), select with every method at every budget and seed "
        "towards a seeded target sample, evaluate each selection beside the no-pre-fine-tuning "
        "baseline and the random and oracle references, and write results.csv, results.json "
        "and results.md with each method's paired difference and its 95% interval. Finished "
        "runs are kept under OUT/runs: a rerun computes only the missing ones.",
    )
    p.add_argument(
        "--preset", choices=sorted(PRESETS), default=None,
        help="the protocol (default: cpu; causal with --task-train)",
    )  # fmt: skip
    p.add_argument(
        "--tasks", "--only-task", metavar="A,B",
        help="only these of the preset's task sources (e.g. fortunes); the pool stays the same, "
        "so a preset can run in parts into one --out",
    )  # fmt: skip
    p.add_argument(
        "--methods", metavar="A,B",
        help="override the preset's methods (tunesift methods, and the oracle reference row)",
    )  # fmt: skip
    p.add_argument(
        "--modes", metavar="A,B", help="override the preset's modes (fast, encoder, causal)"
    )
    p.add_argument("--budgets", metavar="N,M", help="override the preset's budgets (documents)")
    p.add_argument("--seeds", metavar="S,T", help="override the preset's seeds")
    p.add_argument(
        "--against", metavar="A,B",
        help="also compare every method with these methods of the bench (paired intervals, as "
        "against random), e.g. --against dsir to see GOT-D minus DSIR",
    )  # fmt: skip
    p.add_argument(
        "--param", action="append", default=[], metavar="METHOD.NAME=VALUE",
        help="a method's hyper-parameter (repeatable, as compare's), e.g. less.model=tinylm; "
        "it joins that method's run keys only, so the other methods' finished runs are reused",
    )  # fmt: skip
    user = p.add_argument_group(
        "your own target (instead of the preset's tasks; the preset gives the protocol)"
    )
    user.add_argument("--task-train", type=Path, metavar="FILE",
                      help="labeled train split (JSONL/CSV/Parquet, fields text and label)")  # fmt: skip
    user.add_argument("--task-test", type=Path, metavar="FILE", help="labeled test split")
    user.add_argument("--pool", type=Path, nargs="+", metavar="FILE",
                      help="the pool files to select from")  # fmt: skip
    user.add_argument("--task-unlabeled", type=Path, nargs="+", default=[], metavar="FILE",
                      help="unlabeled in-domain texts for the oracle row (never in the pool)")  # fmt: skip
    user.add_argument("--task-name", metavar="NAME",
                      help="the task's name in the results (default: the train file's stem)")  # fmt: skip
    user.add_argument("--text-field", default="text")
    user.add_argument("--label-field", default="label")
    p.add_argument("--out", type=Path, default=Path("runs/bench"), help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an output folder holding files tunesift did not write")  # fmt: skip
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument(
        "--cache-dir", type=Path, help="feature cache (default: $XDG_CACHE_HOME/tunesift)"
    )
    add_report_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_bench_cmd)


def run_bench_cmd(args: argparse.Namespace) -> int:
    from tunesift.cli.options import check_report_path, guard_outputs, parse_method_params
    from tunesift.evaluate.bench import check_method_params, run_bench

    check_report_path(args)
    user, preset = _protocol(args)
    method_params = check_method_params(preset.methods, parse_method_params(args.param, "bench"))
    inputs = [("--task-train", args.task_train), ("--task-test", args.task_test),
              *(("--pool", p) for p in args.pool or ()),
              *(("--task-unlabeled", p) for p in args.task_unlabeled)]  # fmt: skip
    guard_outputs(args, [("--out", args.out / f"results.{x}") for x in ("csv", "json", "md")]
                  + [("--report", args.report)],
                  [(f, p) for f, p in inputs if p is not None],
                  folders=[("--out", args.out)])  # fmt: skip
    result = run_bench(
        preset,
        args.out,
        cache_dir=args.cache_dir,
        device=args.device,
        progress=None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True)),
        user_task=user,
        method_params=method_params,
    )
    print((args.out / "results.md").read_text(), end="")
    print(f"{len(result['rows'])} runs ({result['executed']} computed, {result['reused']} reused "
          f"from {args.out}/runs) in {result['seconds']:.0f} s; wrote {args.out}/results.csv, "
          f"results.json, results.md")  # fmt: skip
    if args.report:
        from tunesift.outputs import record_outputs
        from tunesift.report.bench_report import build_bench_report

        # from results.json as written, so `tunesift report OUT` gives the same page
        saved = json.loads((args.out / "results.json").read_text(encoding="utf-8"))
        build_bench_report(saved).write(args.report)
        record_outputs([args.report], command="tunesift bench")
        print(f"wrote {args.report}")
    return 0


def _protocol(args: argparse.Namespace) -> tuple[Any, Any]:
    """The user's task (or None) and the preset, restricted by the flags (checked here)."""
    import dataclasses

    from tunesift.evaluate.bench import ORACLE, PRESETS, UserTask, restrict

    given = [f for f, v in (("--task-train", args.task_train), ("--task-test", args.task_test),
                            ("--pool", args.pool)) if v]  # fmt: skip
    if given and len(given) < 3:
        missing = {"--task-train", "--task-test", "--pool"} - set(given)
        raise TunesiftError(f"{given[0]} needs {' and '.join(sorted(missing))} too")
    for flag, value in (("--task-unlabeled", args.task_unlabeled), ("--task-name", args.task_name)):
        if not given and value:
            raise TunesiftError(f"{flag} needs --task-train, --task-test and --pool")
    if given and args.tasks:
        raise TunesiftError("--tasks picks the preset's tasks; it does not go with --task-train")
    preset = restrict(
        PRESETS[args.preset or ("causal" if given else "cpu")], tasks=_csv(args.tasks),
        methods=_csv(args.methods), modes=_csv(args.modes), budgets=_ints(args.budgets, "--budgets"),
        seeds=_ints(args.seeds, "--seeds"), against=_csv(args.against),
    )  # fmt: skip
    if not given:
        return None, preset
    if ORACLE in preset.methods and not args.task_unlabeled:
        if args.methods:
            raise TunesiftError("the oracle row needs --task-unlabeled (in-domain texts)")
        preset = dataclasses.replace(
            preset, methods=tuple(m for m in preset.methods if m != ORACLE)
        )
    user = UserTask(
        str(args.task_train), str(args.task_test), tuple(str(p) for p in args.pool),
        tuple(str(p) for p in args.task_unlabeled), name=args.task_name, text_field=args.text_field,
        label_field=args.label_field,
    )  # fmt: skip
    return user, preset


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _ints(text: str | None, flag: str) -> list[int] | None:
    items = _csv(text)
    if items is None:
        return None
    try:
        return [int(t) for t in items]
    except ValueError:
        raise TunesiftError(f"{flag} expects integers separated by commas, got {text!r}") from None
