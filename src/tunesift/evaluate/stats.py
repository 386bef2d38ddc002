"""Paired differences between two evaluated selections, with 95% intervals that can tell.

The unit of comparison is the paired difference (method − reference) on the same seed and the
same test items (docs/evaluation.md, "Statistics"). Two sources of noise move it: the seed (which
target sample the method selected towards, and the training's initialization and batch order)
and the finite test set. The interval covers both with a **two-level bootstrap** (Davison &
Hinkley 1997, Sec. 3.8, "multi-stage sampling"; Field & Welsh 2007): each replicate resamples the
seeds with replacement, then, independently for every drawn seed, that seed's test items with
replacement, and recomputes the statistic; the 2.5 and 97.5 percentiles of ``B`` replicates are
the 95% interval. Method and reference are resampled with the *same* item indices, so the pairing
by item is kept.

Three statistics:
- a mean over items (accuracy: per-item correctness 0/1) — the difference of means;
- macro-F1 from per-item predicted and gold labels, recomputed on every resample;
- perplexity, a ratio statistic: ``exp(Σ nll / Σ tokens)`` over the resampled items is
  recomputed in every replicate for method and reference (never a mean of per-item
  perplexities), and both the difference and the difference in % of the reference's perplexity
  are reported.
The per-seed values are averaged over the seeds. When per-item arrays are not available (a result
without them), ``t_interval`` gives the classical t-interval over seeds of the per-seed
differences. An interval is *significant* only when it excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tunesift.errors import TunesiftError

# per seed: named, aligned per-item arrays (method and reference both)
SeedItems = Mapping[str, np.ndarray]
# the statistic of one seed for each row of an index matrix (B x n) -> (B,)
Statistic = Callable[[SeedItems, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Interval:
    """A paired difference (method − reference): point estimate and a 95% interval.

    ``kind`` is ``"bootstrap"`` (two-level, over seeds and test items) or ``"t"`` (over seeds
    only). ``low``/``high`` are NaN when the interval cannot be formed (one seed, no items).
    """

    estimate: float
    low: float
    high: float
    kind: str
    n_seeds: int
    n_items: int = 0
    level: float = 0.95

    @property
    def significant(self) -> bool:
        """True only when the interval exists and excludes zero."""
        return not math.isnan(self.low) and (self.low > 0 or self.high < 0)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}

    def text(self, digits: int = 3) -> str:
        """``+1.234 [+0.5, +2.0]*`` (a star when significant)."""
        if math.isnan(self.low):
            return f"{self.estimate:+.{digits}f} [n/a]"
        star = "*" if self.significant else ""
        return (
            f"{self.estimate:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]{star}"
        )


def _check_seeds(per_seed: Sequence[SeedItems]) -> list[int]:
    if not per_seed:
        raise TunesiftError("paired statistics need at least one seed")
    sizes = []
    for s, items in enumerate(per_seed):
        lengths = {len(np.asarray(v)) for v in items.values()}
        if len(lengths) != 1:
            raise TunesiftError(f"seed {s}: per-item arrays differ in length {sorted(lengths)}")
        (n,) = lengths
        if n == 0:
            raise TunesiftError(f"seed {s}: no test items")
        sizes.append(n)
    return sizes


def two_level_bootstrap(
    per_seed: Sequence[SeedItems],
    statistic: Statistic,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    resample_seeds: bool = True,
) -> tuple[float, np.ndarray]:
    """The point estimate (mean over seeds of ``statistic`` on all items) and ``n_boot``
    two-level bootstrap replicates of it: seeds resampled with replacement, then, independently
    in every drawn slot, that seed's items with replacement. ``resample_seeds=False`` keeps
    every seed once and resamples the items only (the same item draws): the part of the
    interval that more seeds cannot narrow."""
    sizes = _check_seeds(per_seed)
    n_seeds = len(per_seed)
    arrays = [{k: np.asarray(v, dtype=np.float64) for k, v in it.items()} for it in per_seed]
    point = float(
        np.mean(
            [statistic(a, np.arange(n)[None, :])[0] for a, n in zip(arrays, sizes, strict=True)]
        )
    )
    rng = np.random.default_rng([seed, 0xB007])
    drawn = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    if not resample_seeds:
        drawn = np.broadcast_to(np.arange(n_seeds), drawn.shape)
    if len(set(sizes)) == 1:
        # the same test items under every seed (bench's fixed test split): one item draw per
        # replicate serves every seed, so the items' shared difficulty is resampled once
        idx = rng.integers(0, sizes[0], size=(n_boot, sizes[0]))
        by_seed = np.stack([statistic(a, idx) for a in arrays])  # (seeds, B)
        reps = by_seed[drawn, np.arange(n_boot)[:, None]].mean(axis=1)
        return point, reps
    # different item sets: independent item draws in every slot a seed is drawn into
    stats = np.empty((n_seeds, n_seeds, n_boot))
    for j in range(n_seeds):
        for s, (a, n) in enumerate(zip(arrays, sizes, strict=True)):
            stats[j, s] = statistic(a, rng.integers(0, n, size=(n_boot, n)))
    reps = stats[np.arange(n_seeds)[None, :], drawn, np.arange(n_boot)[:, None]].mean(axis=1)
    return point, reps


def _interval(point: float, reps: np.ndarray, n_seeds: int, n_items: int, level: float) -> Interval:
    alpha = (1 - level) / 2
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    return Interval(point, float(low), float(high), "bootstrap", n_seeds, n_items, level)


def mean_difference(
    method: Sequence[Sequence[float]],
    reference: Sequence[Sequence[float]],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    resample_seeds: bool = True,
) -> Interval:
    """Paired difference of per-item means (accuracy from 0/1 correctness), one list per seed,
    item ``i`` of a seed being the same test item for method and reference
    (``resample_seeds``: see :func:`two_level_bootstrap`)."""
    if len(method) != len(reference):
        raise TunesiftError(
            f"{len(method)} seeds for the method, {len(reference)} for the reference"
        )
    per_seed = [{"d": np.asarray(a, float) - np.asarray(b, float)} for a, b in
                zip(method, reference, strict=True)]  # fmt: skip

    def stat(items: SeedItems, idx: np.ndarray) -> np.ndarray:
        return np.asarray(items["d"][idx].mean(axis=1))

    point, reps = two_level_bootstrap(
        per_seed, stat, n_boot=n_boot, seed=seed, level=level, resample_seeds=resample_seeds
    )
    n_items = min(len(a) for a in method)
    return _interval(point, reps, len(per_seed), n_items, level)


def _macro_f1(pred: np.ndarray, gold: np.ndarray, idx: np.ndarray, n_labels: int) -> np.ndarray:
    """Macro-F1 of every resample (row of ``idx``) over the labels present in its gold or
    predicted labels (sklearn's ``average="macro"``; F1 of a label is 2 TP / (P + G))."""
    p, g = pred[idx], gold[idx]
    f1 = np.full((n_labels, idx.shape[0]), np.nan)
    for c in range(n_labels):
        pc, gc = p == c, g == c
        denom = pc.sum(axis=1) + gc.sum(axis=1)
        tp = (pc & gc).sum(axis=1)
        f1[c] = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)
    return np.asarray(np.nanmean(f1, axis=0))


def macro_f1_difference(
    method_pred: Sequence[Sequence[int]],
    reference_pred: Sequence[Sequence[int]],
    gold: Sequence[int],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Paired macro-F1 difference from per-item predicted label indices (one list per seed) and
    the test split's gold label indices (shared by every seed); macro-F1 is recomputed on every
    resample, as it is not a mean over items."""
    if len(method_pred) != len(reference_pred):
        raise TunesiftError(
            f"{len(method_pred)} seeds for the method, {len(reference_pred)} for the reference"
        )
    g = np.asarray(gold, dtype=np.int64)
    n_labels = int(max([g.max(initial=0)] + [max(p, default=0) for p in method_pred]
                       + [max(p, default=0) for p in reference_pred])) + 1  # fmt: skip
    per_seed = [{"a": np.asarray(a, float), "b": np.asarray(b, float), "g": g.astype(float)}
                for a, b in zip(method_pred, reference_pred, strict=True)]  # fmt: skip

    def stat(items: SeedItems, idx: np.ndarray) -> np.ndarray:
        gi = items["g"].astype(np.int64)
        a, b = items["a"].astype(np.int64), items["b"].astype(np.int64)
        return _macro_f1(a, gi, idx, n_labels) - _macro_f1(b, gi, idx, n_labels)

    point, reps = two_level_bootstrap(per_seed, stat, n_boot=n_boot, seed=seed, level=level)
    return _interval(point, reps, len(per_seed), len(g), level)


@dataclass(frozen=True)
class PerplexityDifference:
    """Method − reference perplexity: in perplexity units and in % of the reference's."""

    absolute: Interval
    percent: Interval
    reference: float  # the reference's perplexity, mean over seeds

    def to_dict(self) -> dict[str, Any]:
        return {
            "absolute": self.absolute.to_dict(),
            "percent": self.percent.to_dict(),
            "reference": self.reference,
        }


def perplexity_difference(
    method_nll: Sequence[Sequence[float]],
    method_tokens: Sequence[Sequence[float]],
    reference_nll: Sequence[Sequence[float]],
    reference_tokens: Sequence[Sequence[float]],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    resample_seeds: bool = True,
) -> PerplexityDifference:
    """Paired perplexity difference from per-item summed token NLL (nats) and token counts, one
    list per seed. Perplexity = exp(Σ nll / Σ tokens) over the (resampled) items, recomputed
    in every bootstrap replicate: a ratio statistic (``resample_seeds``: see
    :func:`two_level_bootstrap`)."""
    n = len(method_nll)
    if not (len(method_tokens) == len(reference_nll) == len(reference_tokens) == n):
        raise TunesiftError("perplexity_difference: every argument needs one list per seed")
    per_seed = [
        {"a": np.asarray(an, float), "ta": np.asarray(at, float),
         "b": np.asarray(bn, float), "tb": np.asarray(bt, float)}
        for an, at, bn, bt in zip(method_nll, method_tokens, reference_nll, reference_tokens,
                                  strict=True)
    ]  # fmt: skip
    for s, it in enumerate(per_seed):
        if (it["ta"] <= 0).all() or (it["tb"] <= 0).all():
            raise TunesiftError(f"seed {s}: no test tokens")

    def ppl(nll: np.ndarray, tok: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return np.asarray(np.exp(nll[idx].sum(axis=1) / np.maximum(tok[idx].sum(axis=1), 1.0)))

    def absolute(items: SeedItems, idx: np.ndarray) -> np.ndarray:
        return ppl(items["a"], items["ta"], idx) - ppl(items["b"], items["tb"], idx)

    def percent(items: SeedItems, idx: np.ndarray) -> np.ndarray:
        return 100.0 * (ppl(items["a"], items["ta"], idx) / ppl(items["b"], items["tb"], idx) - 1)

    n_items = min(len(it["a"]) for it in per_seed)
    pa, ra = two_level_bootstrap(per_seed, absolute, n_boot=n_boot, seed=seed, level=level,
                                 resample_seeds=resample_seeds)  # fmt: skip
    pp, rp = two_level_bootstrap(per_seed, percent, n_boot=n_boot, seed=seed, level=level,
                                 resample_seeds=resample_seeds)  # fmt: skip
    full = [np.arange(len(it["b"]))[None, :] for it in per_seed]
    ref = float(
        np.mean([ppl(it["b"], it["tb"], i)[0] for it, i in zip(per_seed, full, strict=True)])
    )
    return PerplexityDifference(
        _interval(pa, ra, n, n_items, level), _interval(pp, rp, n, n_items, level), ref
    )


def t_interval(differences: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of per-seed paired differences ± the t quantile × standard error (n − 1 dof);
    NaN bounds for a single seed."""
    from scipy import stats as sps

    d = np.asarray(differences, dtype=np.float64)
    if d.size == 0:
        raise TunesiftError("t_interval needs at least one seed's difference")
    m = float(d.mean())
    if d.size < 2:
        return Interval(m, math.nan, math.nan, "t", 1)
    half = float(sps.t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return Interval(m, m - half, m + half, "t", int(d.size), 0, level)
