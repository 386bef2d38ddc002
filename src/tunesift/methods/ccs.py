"""CCS: coverage-centric coreset selection, stratified over a per-example score.

Zheng, Liu, Lai, Prakash. "Coverage-centric Coreset Selection for High Pruning Rates", ICLR 2023,
Alg. 1. Prune the hardest ``beta`` fraction (likely mislabeled or noisy), split the score range of
the rest into ``n_strata`` equal-width strata, and share the budget between strata by water-filling
(visit strata from the smallest; each gets the smaller of its size and an equal share of what is
left), drawing uniformly at random inside a stratum.

Which score: CCS is defined over any difficulty score (the paper uses training dynamics such as
forgetting counts, AUM, EL2N). tunesift offers ``score_by="field:NAME"`` (a numeric record field:
bring your own difficulty), or the name of a feature method whose score it stratifies
(``"gotd"``, the default, or ``"rds"``), oriented so that higher means more target-relevant.
With a method's score, CCS is "coverage over relevance levels": it keeps the whole range instead
of only the top. ``beta`` defaults to 0 (the paper tunes it per pruning rate).

Which rows are "hardest" is explicit, ``hard="high"`` or ``"low"``: the end of the score range
that ``beta`` prunes. ``hard="auto"`` (the default) means "high" for a record field (the paper's
difficulty scores: more forgetting events, larger EL2N, are harder) and "low" for a method's
score: the hardest rows for a target are the LEAST relevant ones, so pruning never removes the
rows most similar to the target. Give ``hard="low"`` for a field where small means hard (AUM).

The water-filling allocation equals a round-robin over strata (see ``base.interleave``): any
prefix of the order gives every stratum min(size, level) items, so budgets are met exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.methods.base import Method, PoolInfo, interleave, method_class


class CCS(Method):
    """Coverage-centric stratified sampling.

    Parameters
    ----------
    score_by : str
        ``"field:NAME"`` for a numeric record field, or a feature method's name (``"gotd"``).
    beta : float
        Fraction of the hardest items (see ``hard``) pruned first, in [0, 1).
    hard : "auto", "high" or "low"
        Which end of the score is hardest: "high" (the largest values), "low" (the smallest);
        "auto" is "high" for ``field:NAME`` and "low" for a method's relevance score.
    n_strata : int
        Equal-width strata over the score range (the paper's 50).
    seed : int
        Seeds the stratum order, the draws inside strata and the inner method.

    Attributes
    ----------
    inner_ : Method or None
        The fitted method whose score is stratified (None for ``field:NAME``).
    """

    name = "ccs"

    def __init__(
        self,
        score_by: str = "gotd",
        beta: float = 0.0,
        n_strata: int = 50,
        seed: int = 0,
        hard: str = "auto",
    ):
        self.score_by = score_by
        self.beta = beta
        self.hard = hard
        self.n_strata = n_strata
        self.seed = seed

    def fit(self, pool: np.ndarray, target: np.ndarray) -> CCS:
        if not 0 <= self.beta < 1:
            raise TunesiftError(f"beta must be in [0, 1), got {self.beta}")
        if self.n_strata < 1:
            raise TunesiftError(f"n_strata must be positive, got {self.n_strata}")
        if self.hard not in ("auto", "high", "low"):
            raise TunesiftError(f"hard must be 'auto', 'high' or 'low', got {self.hard!r}")
        self.inner_ = None
        if not str(self.score_by).startswith("field:"):
            try:  # by name among the methods, without importing the registry above us
                cls: type[Method] | None = method_class(str(self.score_by))
            except TunesiftError:
                cls = None
            if cls is None or cls.inputs != "features" or cls is CCS:
                raise TunesiftError(
                    f"ccs: score must be 'field:NAME' or a feature method (gotd, rds), "
                    f"got {self.score_by!r}"
                )
            factory: Callable[..., Method] = cls  # gotd and rds take a seed
            self.inner_ = factory(seed=self.seed).fit(pool, target)
        return self

    def score(self, pool: np.ndarray) -> np.ndarray:
        """The inner method's score oriented higher = more relevant; zeros for a record field."""
        self.check_is_fitted()
        if self.inner_ is None:
            return np.zeros(len(pool), dtype=np.float32)
        s = np.asarray(self.inner_.score(pool), dtype=np.float32)
        return -s if self.inner_.ascending else s

    def hard_end(self) -> str:
        """The end of the score that is hardest ("high" or "low"), with "auto" resolved."""
        if self.hard != "auto":
            return str(self.hard)
        return "high" if str(self.score_by).startswith("field:") else "low"

    def record_columns(self) -> tuple[str, ...]:
        s = str(self.score_by)
        return (s[len("field:") :],) if s.startswith("field:") else ()

    def order(self, scores: np.ndarray, info: PoolInfo) -> np.ndarray:
        self.check_is_fitted()
        if self.inner_ is None:
            name = str(self.score_by)[len("field:") :]
            if name not in info.columns:
                raise TunesiftError(f"ccs: the records have no numeric field {name!r}")
            values = np.asarray(info.columns[name], dtype=np.float64)
        else:
            values = np.asarray(scores, dtype=np.float64)
        rng = np.random.default_rng(self.seed)
        by_hardness = np.argsort(-values if self.hard_end() == "high" else values, kind="stable")
        n_hard = int(np.floor(self.beta * len(values)))
        hard, rest = by_hardness[:n_hard], by_hardness[n_hard:]
        v = values[rest]
        lo, hi = float(v.min()), float(v.max())
        width = (hi - lo) / self.n_strata or 1.0
        stratum = np.minimum(((v - lo) / width).astype(np.int64), self.n_strata - 1)
        groups = [rng.permutation(rest[stratum == s]) for s in rng.permutation(self.n_strata)]
        return np.concatenate([interleave(groups), rng.permutation(hard)])
