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

import numpy as np

#: DSIR's feature space: unigrams + bigrams of lowercased WordPunct tokens, 10,000 buckets.
NGRAM_BUCKETS = 10_000
_WORDPUNCT = r"\w+|[^\w\s]+"


def ngram_counts(texts: Sequence[str], num_buckets: int = NGRAM_BUCKETS):  # -> csr_matrix
    """Hashed unigram + bigram counts per text (sparse rows), signless murmur3 hashing."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(
        n_features=num_buckets,
        token_pattern=_WORDPUNCT,
        ngram_range=(1, 2),
        lowercase=True,
        alternate_sign=False,
        norm=None,
        dtype=np.float64,
    )
    return vec.transform(texts)


def _distribution(counts: np.ndarray, smoothing: float) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64).ravel() + smoothing
    return c / c.sum()


def kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats; terms with p = 0 contribute nothing."""
    mask = p > 0
    return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(q[mask]))))


def kl_reduction(target_counts, pool_counts, selected: np.ndarray, smoothing: float = 1.0) -> float:
    """KL(p_T || q_pool) - KL(p_T || q_sel) on hashed n-gram distributions.

    ``target_counts`` and ``pool_counts`` are per-text count matrices (``ngram_counts``);
    the pool and selection distributions get add-``smoothing`` (Laplace) counts per bucket so
    that the KL stays finite; the target's is the raw empirical one.
    """
    p_t = _distribution(np.asarray(target_counts.sum(axis=0)), 0.0)
    q_pool = _distribution(np.asarray(pool_counts.sum(axis=0)), smoothing)
    q_sel = _distribution(np.asarray(pool_counts[np.asarray(selected)].sum(axis=0)), smoothing)
    return kl(p_t, q_pool) - kl(p_t, q_sel)


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
    x = np.asarray(x, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
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
