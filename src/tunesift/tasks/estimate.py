"""Estimate the target loss of fine-tuning on any subset of tasks, with no model (DESIGN §4.4-4.5).

Li, Zhang, Wang, Zhang (EMNLP 2024 Findings), Sec. 3: around the meta-initialization θ*, an
example's output moves linearly, f_x(θ* + P z) ≈ f_x + ĝ_xᵀ z, so fine-tuning on the union of
tasks S is emulated by the regularized logistic problem

    z_S = argmin_z  (1/|S|) Σ_{x ∈ S} softplus(-(f_x + ĝ_xᵀ z)) + (λ/2) ||z||²,

solved here by Newton's method in d dimensions, and the target loss after that fine-tune is

    L̂(S) = mean_{t ∈ target} softplus(-(f_t + ĝ_tᵀ z_S)).

Differences from the official code (VirtuosoResearch/Scalable-finetuning), on purpose:
- the offsets f_x stay in the problem: the official script drops them and fits random 0/1 labels
  (70% ones, gradients of the zeros negated) with sklearn's intercept, so its z does not depend on
  how well θ* already fits each example, and two runs differ by the random labels;
- the mean over S, not the sum: our true fine-tunes take a fixed number of steps, so the distance
  travelled does not grow with |S|; λ sets that distance and is calibrated on true fine-tunes
  (``calibrate_lambda``, jointly with one additive offset) instead of the official fixed-norm
  rescaling of z;
- L̂ is evaluated in the linearized outputs, so an estimate needs only the stored (f, ĝ) arrays;
  the official script loads θ* + P z into the model and runs the target set through it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.outputs import atomic_open, write_json_atomic


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def fit_logistic(
    f: np.ndarray, g: np.ndarray, lam: float, tol: float = 1e-10, max_iter: int = 50
) -> np.ndarray:
    """z minimizing mean softplus(-(f + g z)) + lam/2 ||z||² (Newton with backtracking).

    The objective is λ-strongly convex, so Newton converges from z = 0 in a handful of steps;
    ``tol`` bounds the squared Newton decrement.
    """
    if lam <= 0:
        raise TunesiftError(f"the L2 strength lambda must be positive, got {lam}")
    n, d = g.shape
    z = np.zeros(d)
    if n == 0:
        return z

    def objective(z: np.ndarray) -> float:
        return float(_softplus(-(f + g @ z)).mean() + 0.5 * lam * z @ z)

    obj = objective(z)
    for _ in range(max_iter):
        m = f + g @ z
        s = _sigmoid(-m)
        grad = -(g.T @ s) / n + lam * z
        if np.abs(grad).max() <= tol:
            break
        w = s * (1.0 - s) / n
        hess = (g.T * w) @ g
        hess.flat[:: d + 1] += lam
        step = np.linalg.solve(hess, grad)
        decrement = float(grad @ step)
        t = 1.0
        while True:
            new = objective(z - t * step)
            if new <= obj - 0.25 * t * decrement or t < 1e-8:
                break
            t *= 0.5
        if t < 1e-8:  # no descent left at float64 precision
            break
        z, obj = z - t * step, new
    return z


@dataclass
class GradientStore:
    """Everything an estimate needs, so later estimates need no model.

    f, g : outputs (n,) and projected gradients (n, d) of the tasks' examples at θ*;
    task_of : the task index (n,) of each example; names : the n_tasks task names;
    target_f, target_g : the same for the target's validation examples;
    meta : how it was made (model, projection, training), written beside the arrays.
    """

    f: np.ndarray
    g: np.ndarray
    task_of: np.ndarray
    names: list[str]
    target_f: np.ndarray
    target_g: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.f = np.asarray(self.f, dtype=np.float64)
        self.g = np.asarray(self.g, dtype=np.float64)
        self.task_of = np.asarray(self.task_of, dtype=np.int64)
        self.target_f = np.asarray(self.target_f, dtype=np.float64)
        self.target_g = np.asarray(self.target_g, dtype=np.float64)
        if self.g.shape[0] != self.f.shape[0] or self.task_of.shape[0] != self.f.shape[0]:
            raise TunesiftError("f, g and task_of must have one row per example")
        if self.target_g.shape != (self.target_f.shape[0], self.g.shape[1]):
            raise TunesiftError("target gradients must have the tasks' projection dimension")
        missing = sorted(set(range(len(self.names))) - set(self.task_of.tolist()))
        if missing:
            raise TunesiftError(f"task {self.names[missing[0]]!r} has no examples")

    @property
    def n_tasks(self) -> int:
        return len(self.names)

    def save(self, path: str | Path) -> Path:
        """``path``.npz with the arrays and ``path``.json with names and meta."""
        path = Path(path)
        # each file atomic: a crash never leaves a torn file for a rerun to load
        with atomic_open(path.with_suffix(".npz"), "wb") as fh:
            np.savez(fh, f=self.f, g=self.g, task_of=self.task_of,
                     target_f=self.target_f, target_g=self.target_g)  # fmt: skip
        write_json_atomic(path.with_suffix(".json"), {"names": self.names, "meta": self.meta},
                          indent=1)  # fmt: skip
        return path.with_suffix(".npz")

    @classmethod
    def load(cls, path: str | Path) -> GradientStore:
        path = Path(path)
        try:
            arrays = np.load(path.with_suffix(".npz"))
            info = json.loads(path.with_suffix(".json").read_text())
        except (OSError, ValueError) as exc:
            raise TunesiftError(f"cannot read the gradient store {path}: {exc}") from None
        return cls(arrays["f"], arrays["g"], arrays["task_of"], info["names"],
                   arrays["target_f"], arrays["target_g"], info.get("meta", {}))  # fmt: skip


class SubsetEstimator:
    """L̂(S) for subsets S of the tasks, from a ``GradientStore`` and the strength ``lam``.

    ``offset`` is added to the estimate of every non-empty subset (see ``calibrate_lambda``)."""

    def __init__(self, store: GradientStore, lam: float, offset: float = 0.0):
        self.store, self.lam, self.offset = store, float(lam), float(offset)
        self._rows = [np.flatnonzero(store.task_of == i) for i in range(store.n_tasks)]

    def _subset(self, subset: Iterable[int]) -> list[int]:
        chosen = sorted({int(i) for i in subset})
        if chosen and (chosen[0] < 0 or chosen[-1] >= self.store.n_tasks):
            raise TunesiftError(f"task index out of range 0..{self.store.n_tasks - 1}: {chosen}")
        return chosen

    def z(self, subset: Iterable[int]) -> np.ndarray:
        chosen = self._subset(subset)
        if not chosen:
            return np.zeros(self.store.g.shape[1])
        rows = np.concatenate([self._rows[i] for i in chosen])
        return fit_logistic(self.store.f[rows], self.store.g[rows], self.lam)

    def target_outputs(self, subset: Iterable[int]) -> np.ndarray:
        """The target's linearized outputs after fine-tuning on ``subset``."""
        return self.store.target_f + self.store.target_g @ self.z(subset)

    def estimate(self, subset: Iterable[int]) -> float:
        """L̂(S) (+ offset); the empty subset gives the no-update loss at θ*."""
        chosen = self._subset(subset)
        loss = float(_softplus(-self.target_outputs(chosen)).mean())
        return loss + self.offset if chosen else loss


def no_update_loss(store: GradientStore) -> float:
    """The target loss at θ* (the trivial 'no update' predictor of every subset)."""
    return float(_softplus(-store.target_f).mean())


@dataclass
class Calibration:
    """λ (and the offset) fitted to true fine-tunes, with the error of every grid point."""

    lam: float
    offset: float
    errors: dict[float, float]


def calibrate_lambda(
    store: GradientStore,
    subsets: Sequence[Sequence[int]],
    true_losses: Sequence[float],
    grid: Sequence[float] | None = None,
    offset: bool = True,
) -> Calibration:
    """The λ on a log grid whose estimates have the least mean squared relative error against
    ``true_losses`` of real fine-tunes on ``subsets``; with ``offset``, jointly with the constant
    c that best shifts every estimate (the mean residual at that λ).

    Why an offset: L̂ is evaluated in the *linearized* outputs, which over-predict how far any
    fine-tune moves the target; measured on 16 real-text tasks, the λ that matched the mean level
    shrank the spread between subsets 8-fold. The subset-independent part of that error is one
    constant; with it, λ is free to match the differences between subsets, which is what
    choosing tasks needs. (The official code evaluates the model at θ* + P z instead and
    rescales z to a hand-set norm.) ``offset=False`` fits λ alone.

    The default grid is scale-aware: the distance z travels goes as ‖ĝ‖²/λ, and gradient norms
    differ by orders of magnitude between models, so λ is searched over the mean squared norm of
    the projected gradients times 10^-3 ... 10^4 (29 points)."""
    if len(subsets) != len(true_losses) or not subsets:
        raise TunesiftError("calibration needs one true loss per subset, and at least one")
    if any(not s for s in subsets):
        raise TunesiftError("calibrate on non-empty subsets (the empty one needs no estimate)")
    if grid is None:
        scale = float(np.mean(np.sum(store.g**2, axis=1))) or 1.0
        grid = list(scale * np.logspace(-3, 4, 29))
    y = np.asarray(true_losses, dtype=np.float64)
    errors, shifts = {}, {}
    for lam in grid:
        est = SubsetEstimator(store, lam)
        pred = np.array([est.estimate(s) for s in subsets])
        c = float(np.mean(y - pred)) if offset else 0.0
        errors[float(lam)] = float(np.mean(((pred + c - y) / y) ** 2))
        shifts[float(lam)] = c
    best = min(errors, key=errors.__getitem__)
    return Calibration(best, shifts[best], errors)


# ------------------------------------------------------------------------------------- search


def random_subsets(n_tasks: int, m: int, alpha: float, seed: int) -> list[list[int]]:
    """``m`` seeded subsets of round(alpha × n_tasks) tasks each (at least one)."""
    if not 0 < alpha <= 1:
        raise TunesiftError(f"subset size alpha must be in (0, 1], got {alpha}")
    size = max(1, round(alpha * n_tasks))
    rng = np.random.default_rng([seed, 0x5E7])
    return [sorted(rng.choice(n_tasks, size, replace=False).tolist()) for _ in range(m)]


@dataclass
class Ensemble:
    """The random ensemble of Sec. 3.2: m subsets, their estimates, and two task scores.

    ``scores``: mean L̂ over the subsets containing each task (lower is better);
    ``coef``: OLS coefficients of L̂ on subset indicators with an intercept (negative: the task
    lowers the target loss when added).
    """

    subsets: list[list[int]]
    estimates: np.ndarray
    scores: np.ndarray
    coef: np.ndarray
    intercept: float


def random_ensemble(est: SubsetEstimator, m: int, alpha: float, seed: int) -> Ensemble:
    n = est.store.n_tasks
    subsets = random_subsets(n, m, alpha, seed)
    values = np.array([est.estimate(s) for s in subsets])
    ind = np.zeros((m, n))
    for j, s in enumerate(subsets):
        ind[j, s] = 1.0
    counts = ind.sum(0)
    scores = np.where(counts > 0, ind.T @ values / np.maximum(counts, 1), np.nan)
    design = np.hstack([np.ones((m, 1)), ind])
    beta = np.linalg.lstsq(design, values, rcond=None)[0]
    return Ensemble(subsets, values, scores, beta[1:], float(beta[0]))


def forward_selection(est: SubsetEstimator, max_tasks: int | None = None) -> list[int]:
    """Greedy: add the task that lowers L̂ most, while some task lowers it."""
    chosen: list[int] = []
    best = est.estimate(chosen)
    limit = est.store.n_tasks if max_tasks is None else max_tasks
    while len(chosen) < limit:
        trial = {i: est.estimate(chosen + [i]) for i in range(est.store.n_tasks) if i not in chosen}
        i = min(trial, key=trial.__getitem__)
        if trial[i] >= best:
            break
        chosen.append(i)
        best = trial[i]
    return sorted(chosen)


def choose(
    est: SubsetEstimator,
    rule: str = "top-k",
    k: int | None = None,
    m: int = 500,
    alpha: float = 0.5,
    seed: int = 0,
) -> tuple[list[int], Ensemble | None]:
    """Tasks chosen by ``rule``: 'top-k' (the k best ensemble scores; k defaults to α·n),
    'threshold' (every task whose OLS coefficient is below the mean coefficient) or 'forward'."""
    if rule == "forward":
        return forward_selection(est, k), None
    ens = random_ensemble(est, m, alpha, seed)
    if rule == "top-k":
        k = k or max(1, round(alpha * est.store.n_tasks))
        order = np.argsort(np.nan_to_num(ens.scores, nan=np.inf), kind="stable")
        return sorted(order[:k].tolist()), ens
    if rule == "threshold":
        # subsets of one size make the indicators sum to a constant, collinear with the
        # intercept: only differences between coefficients are identified, so the threshold is
        # their mean (a task helps more than the average task), not zero
        centered = ens.coef - ens.coef.mean()
        chosen = sorted(np.flatnonzero(centered < 0).tolist())
        return chosen or [int(np.argmin(ens.coef))], ens
    raise TunesiftError(f"unknown selection rule {rule!r}; choose from top-k, threshold, forward")


def gradient_similarity(store: GradientStore) -> np.ndarray:
    """LESS-style task scores (Xia et al., 2024): each example's projected gradient, normalized,
    against the target's mean projected gradient, normalized; averaged over the task's examples.
    Higher is more similar. The baseline GradEx is compared against (LESS also preconditions with
    Adam's moments; we have none at θ*, so this is its SGD form)."""
    t = store.target_g.mean(0)
    t = t / (np.linalg.norm(t) + 1e-12)
    cos = (store.g @ t) / (np.linalg.norm(store.g, axis=1) + 1e-12)
    return np.array([float(cos[store.task_of == i].mean()) for i in range(store.n_tasks)])
