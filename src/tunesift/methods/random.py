"""Random baselines: uniform over the pool, and uniform over sources.

``random`` is what every data-selection paper must beat. ``random-balanced`` gives each source
(the records' ``source``: a dataset, a file, a category) the same share of the budget; sources
with fewer records than their share give the rest to the others (water-filling), so the budget
is always met. Both are seeded: the same pool and seed give the same selection.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.methods.base import Method, PoolInfo, interleave


class _Unscored(Method):
    """Shared by the random rules: nothing to fit, no per-row score; the rule is ``order``."""

    inputs = "none"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, pool: Any = None, target: Any = None) -> _Unscored:
        """Nothing to learn; marks the method fitted, so that ``order`` follows ``fit`` as for
        every other method."""
        self.fitted_ = True
        return self

    def score(self, pool: Any) -> np.ndarray:
        self.check_is_fitted()
        # Zeros keep the shape contract.
        return np.zeros(len(pool), dtype=np.float32)


class Random(_Unscored):
    """Uniform random selection without replacement.

    Parameters
    ----------
    seed : int
        Seeds the permutation.

    Attributes
    ----------
    fitted_ : bool
        True once ``fit`` ran (random selection learns nothing from the data).
    """

    name = "random"

    def order(self, scores: np.ndarray, info: PoolInfo) -> np.ndarray:
        self.check_is_fitted()
        return np.random.default_rng(self.seed).permutation(info.size)


class RandomBalanced(_Unscored):
    """Uniform over sources, uniform inside each source; leftovers of small sources redistributed.

    Parameters
    ----------
    seed : int
        Seeds the source order of each round and the order inside each source.

    Attributes
    ----------
    fitted_ : bool
        True once ``fit`` ran (random selection learns nothing from the data).
    """

    name = "random-balanced"

    def order(self, scores: np.ndarray, info: PoolInfo) -> np.ndarray:
        self.check_is_fitted()
        if info.sources is None:
            raise TunesiftError(
                "random-balanced needs records with sources; bare pool features have none"
            )
        rng = np.random.default_rng(self.seed)
        codes = np.asarray(info.sources)
        # The source order inside a round is shuffled too, so that a budget ending mid-round
        # does not always favour the same sources.
        groups = [
            rng.permutation(np.flatnonzero(codes == c)) for c in rng.permutation(np.unique(codes))
        ]
        return interleave(groups)
