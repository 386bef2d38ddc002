"""D4: semantic deduplication (SemDeDup), then pruning the most prototypical points.

Tirumala, Simig, Aghajanyan, Morcos. "D4: Improving LLM Pretraining via Document De-Duplication
and Diversification", NeurIPS 2023 (Sec. 3). SemDeDup: Abbas, Tirumala, Simig, Ganguli, Morcos,
"SemDeDup: Data-efficient learning at web-scale through semantic deduplication" (2023), Alg. 1.
SSL prototypes: Sorscher et al., "Beyond neural scaling laws" (NeurIPS 2022).

1. SemDeDup: cluster the embeddings with spherical (cosine) k-means, as the official code does
   (faiss ``spherical=True``; ``kmeans.fit_spherical_kmeans``), each item to its closest
   centroid by cosine;
   inside a cluster, visit items from the farthest to the nearest of its centroid and drop an
   item whose cosine to an already kept item exceeds ``1 - epsilon``.
2. Prototypes: re-cluster what is left and rank it by cosine distance to its own centroid,
   farthest first: pruning to the budget drops the most prototypical (easiest) points.
The order is the kept items by that distance, then the semantic duplicates (used only when the
budget exceeds what deduplication keeps). D4 looks at the pool only: it is target-agnostic.

Difference from the SemDeDup code, deliberate: the original drops item j when its cosine to
*any* earlier item in the cluster exceeds the threshold, kept or already dropped, so a chain
a~b~c with a, c far apart loses both b and c; we compare with kept items only (greedy), which
keeps c. Items with no close earlier item at all are kept without the sequential check, so the
greedy pass only visits the duplicate candidates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.features.vectors import normalize_rows
from tunesift.methods.base import Method, PoolInfo
from tunesift.methods.kmeans import assign_cosine, fit_spherical_kmeans

_BLOCK = 4096


def semdedup_cluster(x: np.ndarray, threshold: float) -> np.ndarray:
    """Keep mask for the rows of one cluster, given in visiting order (normalized rows)."""
    n = len(x)
    keep = np.ones(n, dtype=bool)
    # First pass, blocked: the rows with some earlier row above the threshold (candidates).
    candidate = np.zeros(n, dtype=bool)
    for s in range(0, n, _BLOCK):
        b = x[s : s + _BLOCK]
        sims = b @ x[: s + len(b)].T  # this block against every row up to its end
        # only earlier rows count: mask the diagonal and everything after it
        cols = np.arange(s + len(b))
        sims[cols[None, :] >= (np.arange(s, s + len(b)))[:, None]] = -np.inf
        candidate[s : s + len(b)] = sims.max(axis=1) > threshold
    # Second pass, sequential over candidates only: compare with earlier *kept* rows.
    for j in np.flatnonzero(candidate):
        earlier_kept = np.flatnonzero(keep[:j])
        if len(earlier_kept) and float((x[earlier_kept] @ x[j]).max()) > threshold:
            keep[j] = False
    return keep


class D4(Method):
    """SemDeDup then SSL-prototype pruning.

    Parameters
    ----------
    n_clusters : int
        k of both spherical k-means steps (default 100).
    epsilon : float
        SemDeDup threshold: items with cosine above ``1 - epsilon`` to a kept item are duplicates.
    fit_sample : int
        Rows each k-means is fitted on.
    seed : int
        Seeds both k-means fits (initialization and the fit sample).

    Attributes
    ----------
    dedup_centroids_ : ndarray of shape (k, d), float32
        Unit-norm centroids of the SemDeDup clustering.
    n_duplicates_ : int
        Set by ``order``: pool rows SemDeDup dropped as semantic duplicates.
    """

    name = "d4"

    def __init__(
        self, n_clusters: int = 100, epsilon: float = 0.05, fit_sample: int = 100_000, seed: int = 0
    ):
        self.n_clusters = n_clusters
        self.epsilon = epsilon
        self.fit_sample = fit_sample
        self.seed = seed

    def fit(self, pool: np.ndarray, target: Any = None) -> D4:
        if not 0 <= self.epsilon < 2:
            raise TunesiftError(f"epsilon must be in [0, 2), got {self.epsilon}")
        self.dedup_centroids_ = fit_spherical_kmeans(
            pool, int(self.n_clusters), seed=self.seed, fit_sample=int(self.fit_sample)
        )
        return self

    def score(self, pool: np.ndarray) -> np.ndarray:
        """The row's SemDeDup cluster (the rule lives in ``order``, which needs whole clusters)."""
        self.check_is_fitted()
        return assign_cosine(pool, self.dedup_centroids_)[0].astype(np.float32)

    def order(self, scores: np.ndarray, info: PoolInfo) -> np.ndarray:
        self.check_is_fitted()
        if info.features is None:
            raise TunesiftError("d4 needs the pool features")
        x = normalize_rows(info.features)
        labels = np.asarray(scores, dtype=np.int64)
        keep = np.zeros(len(x), dtype=bool)
        for c in np.unique(labels):
            rows = np.flatnonzero(labels == c)
            cos = x[rows] @ self.dedup_centroids_[c]
            rows = rows[np.argsort(cos, kind="stable")]  # farthest from the centroid first
            keep[rows] = semdedup_cluster(x[rows], 1.0 - self.epsilon)
        kept = np.flatnonzero(keep)
        self.n_duplicates_ = int(len(x) - len(kept))
        proto = fit_spherical_kmeans(
            x[kept], int(self.n_clusters), seed=self.seed + 1, fit_sample=int(self.fit_sample)
        )
        _, cos_to_proto = assign_cosine(x[kept], proto)
        dist = 1.0 - cos_to_proto
        ranked = kept[np.argsort(-dist, kind="stable")]
        dups = np.flatnonzero(~keep)
        return np.concatenate([ranked, dups])

    def diagnostics(self) -> dict[str, Any]:
        return {"semantic_duplicates": getattr(self, "n_duplicates_", None)}
