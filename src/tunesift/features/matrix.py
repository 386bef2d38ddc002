"""``FeatureMatrix``: rows of memory-mapped shards (float16 or float32), read as float32 on demand.

The feature cache stores float16 (half the disk and page cache of float32); methods index it like
a 2-D array: a slice or an index array returns a float32 ndarray of just those rows, read from
the shards that hold them. Nothing loads the whole matrix unless asked (``np.asarray``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class FeatureMatrix:
    """A read-only (n, d) float32 view over row shards."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, shards: Sequence[np.ndarray]):
        if not shards:
            raise ValueError("a FeatureMatrix needs at least one shard")
        widths = {s.shape[1] for s in shards}
        if len(widths) != 1 or any(s.ndim != 2 for s in shards):
            raise ValueError(f"shards must be 2-D with one width, got widths {sorted(widths)}")
        self._shards = list(shards)
        self._offsets = np.cumsum([0, *(len(s) for s in shards)])
        self.shape = (int(self._offsets[-1]), widths.pop())

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def storage_dtype(self) -> np.dtype:
        return self._shards[0].dtype

    @property
    def nbytes(self) -> int:
        """Bytes as stored (float16 shards: half of the float32 rows they read as)."""
        return int(sum(s.nbytes for s in self._shards))

    def _rows(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((max(stop - start, 0), self.shape[1]), dtype=np.float32)
        if stop <= start:
            return out
        first = int(np.searchsorted(self._offsets, start, side="right")) - 1
        for k in range(first, len(self._shards)):
            lo, hi = self._offsets[k], self._offsets[k + 1]
            if lo >= stop:
                break
            a, b = max(start, lo), min(stop, hi)
            out[a - start : b - start] = self._shards[k][a - lo : b - lo]
        return out

    def _gather(self, idx: np.ndarray) -> np.ndarray:
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        idx = np.where(idx < 0, idx + n, idx)
        out = np.empty((len(idx), self.shape[1]), dtype=np.float32)
        shard_of = np.searchsorted(self._offsets, idx, side="right") - 1
        for k in np.unique(shard_of):
            mask = shard_of == k
            local = idx[mask] - self._offsets[k]
            order = np.argsort(local, kind="stable")  # sequential reads within a shard
            rows = np.asarray(self._shards[k][local[order]], dtype=np.float32)
            dest = np.flatnonzero(mask)[order]
            out[dest] = rows
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            rows, cols = key[0], key[1:]
            return self[rows][(slice(None), *cols)]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self._rows(start, stop)
            return self._gather(np.arange(start, stop, step))
        if isinstance(key, (int, np.integer)):
            return self._gather(np.array([int(key)]))[0]
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return self._gather(idx.astype(np.int64, copy=False))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        full = self._rows(0, len(self))
        return full if dtype is None else full.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"FeatureMatrix(shape={self.shape}, shards={len(self._shards)}, stored as {self.storage_dtype})"
