"""The Method contract every selector follows: fit on (pool sample, target), score shards, order.

Data flows one way: a method is fitted on the target and (a sample of) the pool, scores any shard
of the pool independently (the map step that scales out), and turns the scores into a *priority
order*: every pool row, best first. The budget (documents or tokens) and per-source caps are
applied afterwards, by ``tunesift.methods.budget.fill``, identically for every method, by walking
that order. Orders whose rule is not a plain sort (round-robin across target queries, per-cluster
quotas, strata, sources) are built so that any prefix is the method's selection at that size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from tunesift.errors import TunesiftError

#: What ``fit``/``score`` receive: feature rows (an (n, d) float array) or raw texts (list[str]).
Inputs = Literal["features", "texts", "none"]


@dataclass
class PoolInfo:
    """Per-row facts about the whole pool that some ordering rules need, beyond the scores.

    ``sources`` are integer codes into ``source_names`` (None when the pool has no records,
    e.g. features given as a bare .npy); ``features`` is the pool's feature matrix when the
    method works on features; ``columns`` holds numeric record fields a method asked for by
    name (``Method.record_columns``), e.g. kMQ's quality scores.
    """

    size: int
    sources: np.ndarray | None = None
    source_names: tuple[str, ...] = ()
    features: np.ndarray | None = None
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    #: target rows' source codes (several target tasks), or None
    target_sources: np.ndarray | None = None
    #: the budget's per-source cap, for orders whose rule depends on it (RDS+'s domain cap)
    max_per_source: int | None = None


class Method(ABC):
    """A data-selection method, shaped like a scikit-learn estimator.

    Hyper-parameters go to ``__init__``; ``fit`` sees the target and the pool (or a sample of it)
    and stores a small state in trailing-underscore attributes; ``score`` maps any shard of the
    pool to one score per row, independently of the other shards, so scoring can run shard by
    shard, on threads or on a cluster; ``order`` turns the scores of the whole pool into the
    rows best first (default: sort by score); ``select`` takes the first ``budget`` of them.

    ``inputs`` says what ``fit`` and ``score`` receive: ``"features"`` (float arrays from the
    featurizer), ``"texts"`` (lists of raw strings, for methods with their own text features
    such as DSIR and ZIP-FIT) or ``"none"`` (random selection: ``fit`` and ``score`` get the
    row count only through ``PoolInfo``).
    """

    name: ClassVar[str]
    inputs: ClassVar[Inputs] = "features"
    #: Names of the ``__init__`` hyper-parameters, reported by ``get_params``.
    _param_names: ClassVar[tuple[str, ...]] = ()
    #: True when the smallest scores are the best (GOT-D's most negative potentials).
    ascending: ClassVar[bool] = False

    @abstractmethod
    def fit(self, pool: Any, target: Any) -> Method: ...

    @abstractmethod
    def score(self, pool: Any) -> np.ndarray: ...

    def order(self, scores: np.ndarray, info: PoolInfo) -> np.ndarray:
        """Every pool row, best first. The default sorts by score (ties: lower index first)."""
        return top_k(scores, len(scores), ascending=self.ascending)

    def record_columns(self) -> tuple[str, ...]:
        """Numeric record fields ``order`` needs in ``PoolInfo.columns`` (none by default)."""
        return ()

    def diagnostics(self) -> dict[str, Any]:
        """What the fit measured (convergence, costs...), for the provenance sidecar."""
        return {}

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters given to ``__init__`` (scikit-learn convention)."""
        return {k: getattr(self, k) for k in self._param_names}

    def select(self, scores: np.ndarray, budget: int, info: PoolInfo | None = None) -> np.ndarray:
        """Indices of the ``budget`` best rows, best first."""
        if not 0 < budget <= len(scores):
            raise TunesiftError(
                f"budget {budget} must be between 1 and the pool size {len(scores)}"
            )
        if info is None:
            return top_k(scores, budget, ascending=self.ascending)
        return self.order(scores, info)[:budget]


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


def gumbel_order(log_weights: np.ndarray, seed: int) -> np.ndarray:
    """Rows in the order of Gumbel top-k sampling: sampling without replacement ∝ exp(log w).

    Adding i.i.d. Gumbel(0, 1) noise to log-weights and sorting descending draws a sample
    without replacement proportional to the weights (Kool et al. 2019); every prefix is a
    sample of that size. Seeded, unlike DSIR's and kMQ's originals.
    """
    rng = np.random.default_rng(seed)
    key = np.asarray(log_weights, dtype=np.float64) + rng.gumbel(size=len(log_weights))
    return np.argsort(-key, kind="stable")


def interleave(groups: list[np.ndarray]) -> np.ndarray:
    """Round-robin over ordered groups: the 1st of each group, then the 2nd of each, and so on.

    Any prefix of length k gives every group min(its size, level) items for a common level, with
    the unfilled share of small groups going to the others: equal quotas with redistribution
    (kMQ), water-filling across strata (CCS), uniform over sources (balanced random). Groups
    come in the given order within a round.
    """
    groups = [np.asarray(g, dtype=np.int64) for g in groups if len(g)]
    if not groups:
        return np.empty(0, dtype=np.int64)
    sizes = np.array([len(g) for g in groups])
    flat = np.concatenate(groups)
    # position within its group, then group number: a lexsort gives the round-robin order
    within = np.concatenate([np.arange(s) for s in sizes])
    group = np.repeat(np.arange(len(groups)), sizes)
    return flat[np.lexsort((group, within))]
