"""kMQ: k-means clustering, then an equal quota of the budget from every cluster.

Yu, Chen, Ahmadian, Fadaee. "Diversify and Conquer: Diversity-Centric Data Selection with Iterative
Refinement" (2024), Sec. 3 (kMQ, "k-means-quality"). The pool is clustered by k-means on its
embeddings; each cluster gets budget / K items, drawn uniformly at random inside the cluster, or
in proportion to softmax(quality / temperature) when the records carry a quality score.

Differences from the original, deliberate:
- clusters smaller than their quota give what they cannot fill to the others (equal quotas with
  redistribution), so the budget is always met exactly; the original under-fills.
- the quality variant respects ``n_clusters`` (the original silently ignores K there), and every
  draw is seeded (the original never seeds).
- k-means is fitted on a seeded sample of at most ``fit_sample`` rows and every row is assigned to
  its nearest centroid, so clustering scales to pools that do not fit one k-means run.
- the per-row ``score`` is the row's cluster label (kMQ has no relevance score); the rule lives
  in ``order``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.methods.base import Method, PoolInfo, gumbel_order, interleave
from tunesift.methods.kmeans import assign, fit_kmeans


class KMQ(Method):
    """k-means quota selection.

    Parameters
    ----------
    n_clusters : int
        K, the number of clusters (default 100).
    quality_field : str or None
        A numeric record field holding a quality score; None draws uniformly inside clusters.
    temperature : float
        Softmax temperature of the quality draw.
    fit_sample : int
        Rows k-means is fitted on (a seeded sample of the pool beyond that).
    seed : int
        Seeds k-means, the cluster order and the draws inside clusters.

    Attributes
    ----------
    centroids_ : ndarray of shape (k, d), float32
        The k-means centroids (k = min(n_clusters, rows fitted on)).
    cluster_sizes_ : ndarray of shape (k,)
        Set by ``order``: pool rows per cluster.
    """

    name = "kmq"

    def __init__(
        self,
        n_clusters: int = 100,
        quality_field: str | None = None,
        temperature: float = 1.0,
        fit_sample: int = 100_000,
        seed: int = 0,
    ):
        self.n_clusters = n_clusters
        self.quality_field = quality_field
        self.temperature = temperature
        self.fit_sample = fit_sample
        self.seed = seed

    def fit(self, pool: np.ndarray, target: Any = None) -> KMQ:
        if self.temperature <= 0:
            raise TunesiftError(f"temperature must be positive, got {self.temperature}")
        self.centroids_ = fit_kmeans(
            pool, int(self.n_clusters), seed=self.seed, fit_sample=int(self.fit_sample)
        )
        return self

    def score(self, pool: np.ndarray) -> np.ndarray:
        """Each row's cluster (its nearest centroid): the rule lives in ``order``."""
        self.check_is_fitted()
        return assign(pool, self.centroids_)[0].astype(np.float32)

    def record_columns(self) -> tuple[str, ...]:
        return (self.quality_field,) if self.quality_field else ()

    def order(self, scores: np.ndarray, info: PoolInfo) -> np.ndarray:
        self.check_is_fitted()
        labels = np.asarray(scores, dtype=np.int64)
        rng = np.random.default_rng(self.seed)
        quality = info.columns.get(self.quality_field) if self.quality_field else None
        if self.quality_field and quality is None:
            raise TunesiftError(f"kmq: the records have no numeric field {self.quality_field!r}")
        groups = []
        for c in rng.permutation(np.unique(labels)):
            rows = np.flatnonzero(labels == c)
            if quality is None:
                groups.append(rng.permutation(rows))
            else:
                # Gumbel top-k on quality / T: sampling without replacement ∝ softmax(quality / T)
                logits = np.asarray(quality, dtype=np.float64)[rows] / self.temperature
                groups.append(rows[gumbel_order(logits, int(rng.integers(2**31)))])
        self.cluster_sizes_ = np.bincount(labels, minlength=len(self.centroids_))
        return interleave(groups)

    def diagnostics(self) -> dict[str, Any]:
        d: dict[str, Any] = {"n_clusters": int(len(self.centroids_))}
        if hasattr(self, "cluster_sizes_"):
            sizes = self.cluster_sizes_
            d["cluster_size_min"], d["cluster_size_max"] = int(sizes.min()), int(sizes.max())
        return d
