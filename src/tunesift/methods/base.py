"""The Method contract every selector follows: fit on (pool sample, target), score shards, select."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from tunesift.errors import TunesiftError


class Method(ABC):
    """A data-selection method, shaped like a scikit-learn estimator.

    Hyper-parameters go to ``__init__``; ``fit`` sees the target and the pool (or a sample of it)
    and stores a small state in trailing-underscore attributes; ``score`` maps any shard of the
    pool to one score per row, independently of the other shards, so scoring can run shard by
    shard, on threads or on a cluster; ``select`` turns the scores into the chosen indices.
    """

    name: ClassVar[str]
    #: Names of the ``__init__`` hyper-parameters, reported by ``get_params``.
    _param_names: ClassVar[tuple[str, ...]] = ()
    #: True when the smallest scores are the best (GOT-D's most negative potentials).
    ascending: ClassVar[bool] = False

    @abstractmethod
    def fit(self, pool: np.ndarray, target: np.ndarray) -> Method: ...

    @abstractmethod
    def score(self, pool: np.ndarray) -> np.ndarray: ...

    def diagnostics(self) -> dict[str, Any]:
        """What the fit measured (convergence, costs...), for the provenance sidecar."""
        return {}

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters given to ``__init__`` (scikit-learn convention)."""
        return {k: getattr(self, k) for k in self._param_names}

    def select(self, scores: np.ndarray, budget: int) -> np.ndarray:
        """Indices of the ``budget`` best rows, best first."""
        return top_k(scores, budget, ascending=self.ascending)


def top_k(scores: np.ndarray, k: int, *, ascending: bool) -> np.ndarray:
    """The k best indices, best first; ties go to the lower index, so the order is deterministic."""
    scores = np.asarray(scores, dtype=np.float64)
    if not 0 < k <= len(scores):
        raise TunesiftError(f"budget {k} must be between 1 and the pool size {len(scores)}")
    if np.isnan(scores).any():
        raise TunesiftError("scores contain NaN; the method failed to score some pool items")
    key = scores if ascending else -scores
    # A stable full sort keeps index order among ties; k-partition first when k is small.
    if k < len(key) // 8:
        part = np.argpartition(key, k - 1)[:k]
        kth = key[part].max()
        cand = np.flatnonzero(key <= kth)
        return cand[np.argsort(key[cand], kind="stable")][:k]
    return np.argsort(key, kind="stable")[:k]
