"""PCA to a lower dimension before OT: cheaper cost GEMMs at a measured loss of fidelity.

The projection is fitted on a seeded sample of pool rows plus the target (the two must share one
space), then applied to every row in chunks, so the pool is never centred in one N x d copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tunesift.errors import TunesiftError


@dataclass
class PCA:
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (d, k), orthonormal columns
    explained_variance_ratio: float

    @classmethod
    def fit(
        cls, pool: np.ndarray, target: np.ndarray, dim: int, *, sample: int = 50_000, seed: int = 0
    ) -> PCA:
        d = pool.shape[1]
        if not 0 < dim <= d:
            raise TunesiftError(
                f"pca_dim must be between 1 and the feature width {d}, got {dim}", param="pca_dim"
            )
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(len(pool), size=min(sample, len(pool)), replace=False))
        x = np.concatenate([np.asarray(pool[rows], np.float64), np.asarray(target, np.float64)])
        mean = x.mean(0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        var = s**2
        ratio = float(var[:dim].sum() / var.sum()) if var.sum() > 0 else 1.0
        return cls(mean.astype(np.float32), vt[:dim].T.astype(np.float32), ratio)

    def transform(self, x: np.ndarray, chunk: int = 65_536) -> np.ndarray:
        out = np.empty((len(x), self.components.shape[1]), dtype=np.float32)
        for s in range(0, len(x), chunk):
            out[s : s + chunk] = (
                np.asarray(x[s : s + chunk], np.float32) - self.mean
            ) @ self.components
        return out
