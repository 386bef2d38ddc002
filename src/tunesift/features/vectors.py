"""Operations on feature rows that several layers share (methods, metrics)."""

from __future__ import annotations

import numpy as np


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit L2 norm, as float32; an all-zero row stays zero (no division by 0).

    Cosine similarity is the dot product of normalized rows (RDS+, SemDeDup in D4, spherical
    k-means, the near-duplicate rate).
    """
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
