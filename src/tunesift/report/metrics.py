"""Metrics on any selection, so that methods are compared on the same yardsticks.

- KL reduction on hashed n-grams (Xie et al. 2023, DSIR, Sec. 4): how much closer the selection's
  n-gram distribution is to the target's than the raw pool's is,
  KL(p_T || q_pool) - KL(p_T || q_selection). Higher is better; 0 means no closer than the pool.
- OT distance selection <-> target: the entropic OT cost (same epsilon for every selection).
- Composition by source, exact and near duplicate rates, and Jaccard overlap between selections.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from tunesift.errors import TunesiftError
from tunesift.features.vectors import normalize_rows
from tunesift.methods.dsir import SMOOTHING


def kl_reduction(target_counts: Any, raw_counts: Any, selected_counts: Any) -> float:
    """KL(p_target || p_raw) - KL(p_target || p_selected) over hashed n-gram buckets.

    DSIR's measure (Xie et al. 2023, Sec. 4) of how much closer a selection is to the target than
    the raw pool. The paper's formula has no smoothing term; its code's only one is the 1e-8 added
    to both probabilities of the importance weights, and this uses the same:
    KL(p || q) = sum p (log(p + 1e-8) - log(q + 1e-8)), so ``kl_reduction(target, raw, target)``
    equals DSIR's ``diagnostics()["kl_target_raw"]``. A bucket the target uses and a small
    selection misses costs about p * 18 nats: selections much smaller than the target's vocabulary
    score low, whatever their method.

    Each argument is a per-document count matrix (dense or sparse, e.g. from
    ``features.ngrams.hashed_counts``) or a 1-D vector of bucket totals.
    """
    p_target = _distribution(target_counts, "target")
    p_raw = _distribution(raw_counts, "raw")
    p_selected = _distribution(selected_counts, "selected")
    if not len(p_target) == len(p_raw) == len(p_selected):
        raise TunesiftError("target, raw and selected counts must have the same number of buckets")
    return _kl(p_target, p_raw) - _kl(p_target, p_selected)


def _distribution(counts: Any, what: str) -> np.ndarray:
    """Bucket probabilities from a count matrix (rows: documents) or a vector of totals."""
    totals = counts.sum(axis=0) if sp.issparse(counts) or np.ndim(counts) == 2 else counts
    totals = np.asarray(totals, dtype=np.float64).ravel()
    total = totals.sum()
    if total <= 0:
        raise TunesiftError(f"the {what} counts are empty")
    return totals / total


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(p @ (np.log(p + SMOOTHING) - np.log(q + SMOOTHING)))


def composition(sources: np.ndarray, names: Sequence[str], selected: np.ndarray) -> Counter[str]:
    codes = np.asarray(sources)[np.asarray(selected)]
    return Counter(
        {names[c]: int(n) for c, n in zip(*np.unique(codes, return_counts=True), strict=True)}
    )


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def exact_duplicate_rate(texts: Sequence[str]) -> float:
    """Fraction of items whose text (case and whitespace folded) appeared earlier in the set."""
    if not texts:
        return 0.0
    return 1.0 - len({_normal(t) for t in texts}) / len(texts)


def near_duplicate_rate(x: np.ndarray, threshold: float = 0.95, block: int = 4096) -> float:
    """Fraction of items with cosine above ``threshold`` to an earlier item of the set."""
    n = len(x)
    if n < 2:
        return 0.0
    x = normalize_rows(x)
    dup = 0
    for s in range(0, n, block):
        b = x[s : s + block]
        sims = b @ x[: s + len(b)].T
        rows = np.arange(s, s + len(b))[:, None]
        sims[np.arange(s + len(b))[None, :] >= rows] = -np.inf
        dup += int((sims.max(axis=1) > threshold).sum())
    return dup / n


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = set(np.asarray(a).tolist()), set(np.asarray(b).tolist())
    union = len(sa | sb)
    return len(sa & sb) / union if union else 1.0
