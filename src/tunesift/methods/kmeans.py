"""Seeded k-means shared by the clustering methods (kMQ, D4): fit on a sample, assign in blocks."""

from __future__ import annotations

import numpy as np

from tunesift.errors import TunesiftError

_BLOCK = 65_536


def fit_kmeans(
    x: np.ndarray, n_clusters: int, *, seed: int, fit_sample: int = 100_000, max_iter: int = 100
) -> np.ndarray:
    """Centroids of k-means (k-means++ init, Lloyd) on a seeded sample of ``x``."""
    from sklearn.cluster import KMeans

    if n_clusters < 1:
        raise TunesiftError(f"n_clusters must be positive, got {n_clusters}")
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(x), size=fit_sample, replace=False) if len(x) > fit_sample else None
    sample = np.asarray(x if rows is None else x[np.sort(rows)], dtype=np.float32)
    k = min(n_clusters, len(sample))
    km = KMeans(n_clusters=k, n_init=1, max_iter=max_iter, random_state=seed)
    km.fit(sample)
    return km.cluster_centers_.astype(np.float32)


def assign(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of every row, and the squared distance to it, block by block."""
    labels = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x), dtype=np.float32)
    c_sq = (centroids**2).sum(axis=1)
    for s in range(0, len(x), _BLOCK):
        b = np.asarray(x[s : s + _BLOCK], dtype=np.float32)
        d = (b**2).sum(axis=1, keepdims=True) - 2.0 * b @ centroids.T + c_sq
        labels[s : s + len(b)] = d.argmin(axis=1)
        dist[s : s + len(b)] = np.maximum(d[np.arange(len(b)), labels[s : s + len(b)]], 0.0)
    return labels, dist
