"""Seeded k-means shared by the clustering methods (kMQ, D4): fit on a sample, assign in blocks."""

from __future__ import annotations

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.features.vectors import normalize_rows

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


def fit_spherical_kmeans(
    x: np.ndarray, n_clusters: int, *, seed: int, fit_sample: int = 100_000, max_iter: int = 100
) -> np.ndarray:
    """Unit-norm centroids of spherical k-means (cosine) on a seeded sample of ``x``.

    Dhillon and Modha, "Concept decompositions for large sparse text data using clustering"
    (2001): rows are L2-normalized, each is assigned to the centroid of largest cosine, and a
    centroid is its members' mean renormalized to the unit sphere. SemDeDup's official code runs
    faiss ``Kmeans(..., spherical=True)``, the same iteration. Seeded k-means++ initialization
    (on unit vectors its squared distance is 2 - 2 cos); an emptied cluster keeps its centroid.
    Stops when no assignment changes, or after ``max_iter`` iterations.
    """
    from scipy.sparse import csr_matrix
    from sklearn.cluster import kmeans_plusplus

    if n_clusters < 1:
        raise TunesiftError(f"n_clusters must be positive, got {n_clusters}")
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(x), size=fit_sample, replace=False) if len(x) > fit_sample else None
    sample = normalize_rows(x if rows is None else x[np.sort(rows)])
    k = min(n_clusters, len(sample))
    centroids, _ = kmeans_plusplus(sample, k, random_state=seed)
    centroids = normalize_rows(centroids)
    labels = np.full(len(sample), -1, dtype=np.int64)
    for _ in range(max_iter):
        new, _ = assign_cosine(sample, centroids)
        if np.array_equal(new, labels):
            break
        labels = new
        member = csr_matrix(
            (np.ones(len(sample), dtype=np.float32), (labels, np.arange(len(sample)))),
            shape=(k, len(sample)),
        )
        sums = np.asarray(member @ sample, dtype=np.float32)
        filled = np.linalg.norm(sums, axis=1) > 0
        centroids[filled] = normalize_rows(sums[filled])
    return centroids.astype(np.float32)


def assign_cosine(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid of largest cosine for every row, and that cosine, block by block."""
    labels = np.empty(len(x), dtype=np.int64)
    cos = np.empty(len(x), dtype=np.float32)
    c = normalize_rows(centroids)
    for s in range(0, len(x), _BLOCK):
        sims = normalize_rows(x[s : s + _BLOCK]) @ c.T
        labels[s : s + len(sims)] = sims.argmax(axis=1)
        cos[s : s + len(sims)] = sims[np.arange(len(sims)), labels[s : s + len(sims)]]
    return labels, cos
