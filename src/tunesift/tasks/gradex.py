"""GradEx end to end: meta-initialize once, store projected gradients, estimate, choose, check.

Li, Zhang, Wang, Zhang, "Scalable Fine-tuning from Multiple Data Sources: A First-Order
Approximation Approach", EMNLP 2024 Findings (DESIGN §4):

1. ``fit``: fine-tune the base model on the union of all tasks (θ*, the meta-initialization), then
   store f(x) and the projected ∇f(x) at θ* for every task example and every target validation
   example (``GradientStore``); nothing after this needs the model.
2. ``estimator``/``choose``: L̂(S) for any subset in milliseconds; random ensemble, OLS
   surrogate, top-k/threshold, forward selection (``tunesift.tasks.estimate``).
3. ``true_loss``: the real thing, fine-tuning θ* on S for the same steps; ``calibrate`` fits λ on a
   few such fine-tunes, ``validate`` compares estimates with fresh ones.
4. ``finetune_base``: one real fine-tune of the *base* model on the chosen tasks (the deliverable).

The sklearn-like surface: parameters in ``__init__``, ``fit`` returns self, learned state in
``store_``, ``meta_model_``, ``lam_``.
"""

from __future__ import annotations

import copy
import logging
import pickle
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesift.errors import TunesiftError
from tunesift.models.seeds import torch_threads
from tunesift.outputs import atomic_open
from tunesift.tasks.estimate import (
    Ensemble,
    GradientStore,
    SubsetEstimator,
    calibrate_lambda,
    choose,
    no_update_loss,
    random_subsets,
)
from tunesift.tasks.gradients import Projector, projected_gradients, trainable
from tunesift.tasks.lm import (
    Example,
    TrainConfig,
    evaluate_outputs,
    logistic_loss,
    token_loss,
    train,
)

logger = logging.getLogger(__name__)


@dataclass
class Validation:
    """Estimates against true fine-tunes on held-out random subsets (DESIGN §4.6); ``others``
    holds the other predictors scored the same way (and GradEx with λ alone, when calibrated
    with an offset)."""

    subsets: list[list[int]]
    true: list[float]
    estimated: list[float]
    relative_error: float
    spearman: float
    others: dict[str, dict[str, float]]
    lam: float
    offset: float = 0.0
    seconds_true: list[float] = field(default_factory=list)
    seconds_estimate: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def relative_error(pred: Sequence[float], true: Sequence[float]) -> float:
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    return float(np.mean(np.abs(p - t) / np.abs(t)))


def spearman(pred: Sequence[float], true: Sequence[float]) -> float:
    """Rank correlation; NaN for a constant predictor (it ranks nothing)."""
    from scipy.stats import spearmanr

    p = np.asarray(pred, dtype=np.float64)
    if np.ptp(p) == 0:
        return float("nan")
    return float(spearmanr(p, np.asarray(true, dtype=np.float64)).statistic)


def distinct_subsets(
    n_tasks: int, n: int, alpha: float, seed: int, exclude: Sequence[Sequence[int]] = ()
) -> list[list[int]]:
    """Up to ``n`` distinct seeded random subsets, none of them in ``exclude``, from the first
    ``3 n`` draws of ``random_subsets`` (a repeated subset would cost a fine-tune twice)."""
    used = {tuple(s) for s in exclude}
    fresh = dict.fromkeys(tuple(s) for s in random_subsets(n_tasks, n * 3, alpha, seed))
    return [list(s) for s in fresh if s not in used][:n]


class GradEx:
    """Choose the tasks to fine-tune on by the first-order approximation.

    Parameters
    ----------
    base_model : nn.Module
        The model before any task: the meta-initialization and the final fine-tune start here.
        Only parameters with ``requires_grad`` move (pass a LoRA-wrapped model to move LoRA only).
    meta : TrainConfig
        Training on the union of all tasks (θ*).
    finetune : TrainConfig
        A true fine-tune on a subset, from θ* (calibration and validation); ``final`` defaults to it.
    projection_dim : int
        d, the width of the projected gradients.
    seed : int
        Seeds the meta-training, the projection and every subset draw.
    threads : int or None
        torch CPU threads during the work (None: torch's setting).
    progress : bool
        tqdm bars.
    lam : float
        λ of the emulated fine-tune until ``calibrate`` fits one (``lam_`` after ``fit``).
    """

    def __init__(
        self,
        base_model: nn.Module,
        meta: TrainConfig | None = None,
        finetune: TrainConfig | None = None,
        final: TrainConfig | None = None,
        projection_dim: int = 200,
        seed: int = 0,
        threads: int | None = None,
        progress: bool = False,
        lam: float = 1.0,
    ):
        self.base_model = base_model
        self.meta = meta or TrainConfig(steps=200)
        self.finetune = finetune or TrainConfig(steps=50)
        self.final = final or self.finetune
        self.projection_dim = projection_dim
        self.seed = seed
        self.threads = threads
        self.progress = progress
        self.lam = lam

    # ------------------------------------------------------------------------------ fitting
    def fit(
        self,
        tasks: Mapping[str, Sequence[Example]],
        target_valid: Sequence[Example],
        cache_dir: str | Path | None = None,
    ) -> GradEx:
        """Meta-train on every task's examples, then store f and ĝ at θ*.

        ``cache_dir`` keeps θ* and the store (the expensive part); a later fit given a folder
        that holds them reads them instead of training. The caller names the folder after
        everything that determines them (inputs and settings): this class cannot see the files.
        """
        if len(tasks) < 2:
            raise TunesiftError(f"task selection needs at least two tasks, got {len(tasks)}")
        empty = [name for name, ex in tasks.items() if not ex]
        if empty:
            raise TunesiftError(f"task {empty[0]!r} has no examples")
        if not target_valid:
            raise TunesiftError("the target has no validation examples")
        self.names_ = list(tasks)
        self.tasks_ = [list(tasks[n]) for n in self.names_]
        self.target_ = list(target_valid)
        if not self.lam > 0:
            raise TunesiftError(f"lam must be positive, got {self.lam}")
        self.lam_, self.offset_ = float(self.lam), 0.0
        cache = Path(cache_dir) if cache_dir is not None else None
        if (
            cache is not None
            and (cache / "store.npz").exists()
            and (cache / "meta_model.pt").exists()
        ):
            self.meta_model_ = copy.deepcopy(self.base_model)
            load_trainable(self.meta_model_, cache / "meta_model.pt")
            self.store_ = GradientStore.load(cache / "store")
            self.timings_ = {}
            self.reused_ = True
            logger.info("GradEx: meta-initialization and gradients read from %s", cache)
            return self
        timings: dict[str, float] = {}
        with torch_threads(self.threads or None):
            t0 = time.perf_counter()
            self.meta_model_ = copy.deepcopy(self.base_model)
            union = [e for ex in self.tasks_ for e in ex]
            self.meta_losses_ = train(self.meta_model_, union, self.meta, self.seed,
                                      self.progress, "meta-initialization")  # fmt: skip
            timings["meta_train"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            n_params = sum(p.numel() for _, p in trainable(self.meta_model_))
            proj = Projector(n_params, self.projection_dim, seed=self.seed)
            task_of = np.concatenate([np.full(len(ex), i) for i, ex in enumerate(self.tasks_)])
            f, g = projected_gradients(self.meta_model_, union, proj, progress=self.progress)
            tf, tg = projected_gradients(self.meta_model_, self.target_, proj,
                                         progress=self.progress, desc="target gradients")  # fmt: skip
            timings["gradients"] = time.perf_counter() - t0
        self.timings_ = timings
        self.store_ = GradientStore(
            f, g, task_of, self.names_, tf, tg,
            meta={"projection_dim": self.projection_dim, "seed": self.seed,
                  "trainable_parameters": n_params, "meta": self.meta.to_dict(),
                  "finetune": self.finetune.to_dict(), "timings": timings,
                  "examples": int(len(union)), "target_examples": len(self.target_)},
        )  # fmt: skip
        self.reused_ = False
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            save_trainable(self.meta_model_, cache / "meta_model.pt")
            self.store_.save(cache / "store")
        logger.info("GradEx: %d tasks, %d examples, %d parameters projected to %d; %s",
                    len(self.names_), len(union), n_params, self.projection_dim,
                    ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))  # fmt: skip
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "store_"):
            raise TunesiftError("call fit() first")

    def estimator(self, lam: float | None = None) -> SubsetEstimator:
        self._check_fitted()
        if lam is not None:
            return SubsetEstimator(self.store_, lam)
        return SubsetEstimator(self.store_, self.lam_, self.offset_)

    def estimate(self, subset: Sequence[int]) -> float:
        return self.estimator().estimate(subset)

    # ----------------------------------------------------------------------- the real thing
    def true_loss(self, subset: Sequence[int], seed: int | None = None) -> float:
        """Fine-tune θ* on the subset's examples (``finetune`` steps); the target's logistic loss,
        the quantity L̂ estimates. The empty subset is θ* itself."""
        self._check_fitted()
        if not subset:
            return no_update_loss(self.store_)
        model = copy.deepcopy(self.meta_model_)
        examples = [e for i in sorted(set(subset)) for e in self.tasks_[i]]
        with torch_threads(self.threads or None):
            train(model, examples, self.finetune, self.seed if seed is None else seed)
            return logistic_loss(evaluate_outputs(model, self.target_))

    def calibrate(
        self, n_subsets: int = 5, alpha: float = 0.5, seed: int = 1, offset: bool = True
    ) -> dict[str, Any]:
        """Fit λ (and the offset) on ``n_subsets`` true fine-tunes of distinct random subsets (a
        repeated subset would spend a fine-tune on a point already known)."""
        self._check_fitted()
        subsets = distinct_subsets(len(self.names_), n_subsets, alpha, seed)
        t0 = time.perf_counter()
        true = [self.true_loss(s) for s in subsets]
        seconds = time.perf_counter() - t0
        cal = calibrate_lambda(self.store_, subsets, true, offset=offset)
        plain = calibrate_lambda(self.store_, subsets, true, offset=False)
        self.lam_, self.offset_ = cal.lam, cal.offset
        self.calibration_ = {"subsets": subsets, "true": true, "lam": cal.lam,
                             "offset": cal.offset, "grid_mse": cal.errors,
                             "lam_without_offset": plain.lam, "seconds": seconds}  # fmt: skip
        return self.calibration_

    def validate(self, n_subsets: int = 30, alpha: float = 0.5, seed: int = 2) -> Validation:
        """Estimates against true fine-tunes on fresh random subsets, beside two trivial
        predictors: 'no update' (the loss at θ*) and the mean of the calibration losses."""
        self._check_fitted()
        cal = getattr(self, "calibration_", None)
        used = cal["subsets"] if cal else []
        subsets = distinct_subsets(len(self.names_), n_subsets, alpha, seed, exclude=used)
        est = self.estimator()
        true, estimated, t_true, t_est = [], [], [], []
        for s in subsets:
            t0 = time.perf_counter()
            estimated.append(est.estimate(s))
            t_est.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            true.append(self.true_loss(s))
            t_true.append(time.perf_counter() - t0)
        others = {"no update": [no_update_loss(self.store_)] * len(subsets)}
        if cal and cal.get("offset"):
            plain = self.estimator(cal["lam_without_offset"])
            others["GradEx, λ only (no offset)"] = [plain.estimate(s) for s in subsets]
        if cal:
            others["mean of calibration"] = [float(np.mean(cal["true"]))] * len(subsets)
        return Validation(
            subsets=subsets, true=true, estimated=estimated,
            relative_error=relative_error(estimated, true), spearman=spearman(estimated, true),
            others={k: {"relative_error": relative_error(v, true), "spearman": spearman(v, true)}
                     for k, v in others.items()},
            lam=self.lam_, offset=self.offset_, seconds_true=t_true, seconds_estimate=t_est,
        )  # fmt: skip

    # ----------------------------------------------------------------------------- choosing
    def choose(
        self, rule: str = "top-k", k: int | None = None, m: int = 500, alpha: float = 0.5
    ) -> tuple[list[int], Ensemble | None]:
        """Task indices chosen by ``rule`` (see ``tunesift.tasks.estimate.choose``)."""
        return choose(self.estimator(), rule, k=k, m=m, alpha=alpha, seed=self.seed)

    def finetune_base(self, subset: Sequence[int], seed: int | None = None) -> nn.Module:
        """One real fine-tune of the base model on the subset's examples (``final`` steps)."""
        self._check_fitted()
        if not subset:
            raise TunesiftError("choose at least one task to fine-tune on")
        model = copy.deepcopy(self.base_model)
        examples = [e for i in sorted(set(subset)) for e in self.tasks_[i]]
        with torch_threads(self.threads or None):
            train(model, examples, self.final, self.seed if seed is None else seed)
        return model


def save_trainable(model: nn.Module, path: str | Path) -> Path:
    """Only what fine-tuning moves (all of a TinyLM; the adapters of a LoRA model: megabytes,
    not the 540 MB of SmolLM2's frozen weights, which the base model file already holds)."""
    path = Path(path)
    with atomic_open(path, "wb") as fh:  # a crash leaves the previous model file, never half one
        torch.save({n: p.detach().cpu() for n, p in trainable(model)}, fh)
    return path


def load_trainable(model: nn.Module, path: str | Path) -> nn.Module:
    """Load ``save_trainable``'s file (or a full state dict) into ``model``; every trainable
    parameter must be in it, and nothing it holds may be unknown to the model."""
    try:
        state = torch.load(Path(path), weights_only=True)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
        raise TunesiftError(f"cannot read model weights from {path}: {exc}") from None
    missing = [n for n, _ in trainable(model) if n not in state]
    unknown = [n for n in state if n not in model.state_dict()]
    if missing or unknown:
        what = f"missing {missing[0]!r}" if missing else f"unknown {unknown[0]!r}"
        raise TunesiftError(f"{path} does not fit this model ({what})")
    model.load_state_dict(state, strict=False)
    return model


def target_scores(model: nn.Module, examples: Sequence[Example]) -> dict[str, float]:
    """Token cross-entropy, its perplexity, and the logistic loss on ``examples``."""
    ce = token_loss(model, examples)
    return {"token_loss": ce, "perplexity": float(np.exp(ce)),
            "logistic_loss": logistic_loss(evaluate_outputs(model, examples))}  # fmt: skip
