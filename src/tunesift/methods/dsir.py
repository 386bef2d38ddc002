"""DSIR: importance resampling on hashed n-gram features.

Xie, Santurkar, Ma, Liang. "Data Selection for Language Models via Importance Resampling",
NeurIPS 2023. Official package: ``data-selection`` on PyPI (p-lambda/dsir), class
``HashedNgramDSIR``; version 1.0.3 is the reference here.

Each text is lowercased and split into WordPunct tokens (``\\w+`` or runs of other non-space
characters, nltk's ``WordPunctTokenizer``); its unigrams and bigrams are hashed into
``num_buckets`` buckets. The target and the raw pool each give a bucket distribution (summed
counts over all documents, normalised once: no per-document normalisation), and a document's
log importance weight is ``counts(doc) . log_diff`` with
``log_diff = log(p_target + 1e-8) - log(p_raw + 1e-8)``. Selection resamples the pool in
proportion to the weights (Gumbel top-k: sampling without replacement), or takes the top k.
Documents with fewer than ``min_length`` tokens (punctuation runs count, as in the package) are
never chosen by the package; here they get weight -inf, so they come last in the order.

With ``hash="sha256"`` the counts, log weights and top-k set equal the package's (tested against
it on 6,000 real documents). Deliberate differences from the package:
- ``hash="fast"`` (default) replaces sha256 of every n-gram string by a vectorised 64-bit
  polynomial hash of the tokens' code points and a mix of the two token hashes for bigrams: same
  tokens, same n-grams, other buckets, ~17x the package's documents per second with both its
  processes, on one (``benchmarks/dsir_speed.py``, docs/benchmarks.md). Selections differ only as collisions differ: at 2**20 buckets
  fast and sha256 weights agree to Spearman 0.995, at 10,000 to 0.72, as do sha256 at 10,000 and
  at 9,973 buckets.
- ``min_length`` defaults to 10 tokens (the package: 100). tunesift's pools are short texts
  (fortunes, dictionary entries, packages); at 100 tokens more than nine in ten fortunes would be
  unselectable. Weights are sums over n-grams, so they grow in magnitude with length and near-empty
  texts score near 0, above most longer ones; the package's minimum keeps those out. Raise
  ``min_length`` where the pool allows it. 10 is the default because it recovers a planted domain
  among fortunes at 97.5-100% precision where 1 reaches 75% (tests/test_dsir.py); it leaves 5% of
  the default pool unselectable, where 100 would leave 82%.
- below-``min_length`` documents stay in the order, last (the contract orders every pool row);
  the package drops them.
- the Gumbel noise is seeded (``seed``); the package draws it from numpy's global state.
- ``sampling="top-k"`` breaks ties by the lower pool index; the package's ``argpartition`` breaks
  them arbitrarily.
- the raw distribution is fitted on the pool (or the sample of it) given to ``fit``; the package
  stops after ``num_tokens_to_fit`` raw tokens (default 1e5 x num_buckets = 1e9).
- one target, unigrams + bigrams, WordPunct tokens only: no ``separate_targets``,
  ``target_proportions``, ``ngrams`` or ``word_tokenize`` options.
"""

from __future__ import annotations

import numbers
from typing import Any, Literal

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.features.ngrams import HASH_MODES, HashMode, ngram_buckets
from tunesift.methods.base import Method, PoolInfo, gumbel_order, top_k

SAMPLINGS = ("gumbel", "top-k")
#: Added to both probabilities before the log, as the package does (also the smoothing of
#: ``report.metrics.kl_reduction``, the paper's KL reduction).
SMOOTHING = 1e-8


class DSIR(Method):
    """DSIR: resample the pool by hashed n-gram importance weights towards the target.

    Parameters
    ----------
    num_buckets : int
        Hash buckets for unigrams and bigrams (the package's default, 10,000).
    hash : "fast" or "sha256"
        ``"sha256"`` reproduces the package's buckets exactly; ``"fast"`` is a vectorised hash.
    min_length : int
        Documents with fewer WordPunct tokens get weight -inf (the package: 100; see the module
        docstring for why the default is 10).
    sampling : "gumbel" or "top-k"
        Gumbel top-k resampling in proportion to the importance weights (the paper's method), or
        the highest weights first.
    seed : int
        Seeds the Gumbel noise.

    Attributes
    ----------
    raw_probs_, target_probs_ : ndarray of shape (num_buckets,)
        Bucket distributions of the pool given to ``fit`` and of the target.
    log_diff_ : ndarray of shape (num_buckets,)
        ``log(target_probs_ + 1e-8) - log(raw_probs_ + 1e-8)``: a document's log weight is its
        bucket counts dotted with this.
    fit_sizes_ : tuple of int
        Documents of the pool and of the target ``fit`` saw.
    fit_below_min_length_ : int
        Pool documents in ``fit`` shorter than ``min_length``.
    pool_below_min_length_ : int
        Set by ``order``: documents of the ordered pool below ``min_length`` (weight -inf).
    """

    name = "dsir"
    inputs = "texts"

    def __init__(
        self,
        num_buckets: int = 10_000,
        hash: HashMode = "fast",
        min_length: int = 10,
        sampling: Literal["gumbel", "top-k"] = "gumbel",
        seed: int = 0,
    ):
        self.num_buckets = num_buckets
        self.hash = hash
        self.min_length = min_length
        self.sampling = sampling
        self.seed = seed

    def _check_params(self) -> None:
        if not _is_int(self.num_buckets):
            raise TunesiftError(
                f"num_buckets must be an integer, got {self.num_buckets!r}", param="num_buckets"
            )
        if self.num_buckets < 1:
            raise TunesiftError(
                f"num_buckets must be positive, got {self.num_buckets}", param="num_buckets"
            )
        if self.hash not in HASH_MODES:
            raise TunesiftError(f"hash must be 'fast' or 'sha256', got {self.hash!r}", param="hash")
        if not _is_int(self.min_length):
            raise TunesiftError(
                f"min_length must be an integer, got {self.min_length!r}", param="min_length"
            )
        if self.min_length < 0:
            raise TunesiftError(
                f"min_length must be >= 0, got {self.min_length}", param="min_length"
            )
        if self.sampling not in SAMPLINGS:
            raise TunesiftError(
                f"sampling must be 'gumbel' or 'top-k', got {self.sampling!r}", param="sampling"
            )

    def fit(self, pool: list[str], target: list[str]) -> DSIR:
        """Bucket distributions of the target and the pool, and their smoothed log ratio."""
        self._check_params()
        raw_totals, raw_lengths = self._bucket_totals(pool)
        target_totals, _ = self._bucket_totals(target)
        if target_totals.sum() == 0:
            raise TunesiftError("the target has no tokens: DSIR needs target text")
        if raw_totals.sum() == 0:
            raise TunesiftError("the pool has no tokens: DSIR needs pool text")
        self.raw_probs_ = raw_totals / raw_totals.sum()
        self.target_probs_ = target_totals / target_totals.sum()
        self.log_diff_ = np.log(self.target_probs_ + SMOOTHING) - np.log(
            self.raw_probs_ + SMOOTHING
        )
        self.fit_sizes_ = (len(pool), len(target))
        self.fit_below_min_length_ = int((raw_lengths < self.min_length).sum())
        return self

    def score(self, pool: list[str]) -> np.ndarray:
        """Each document's log importance weight; -inf below ``min_length`` tokens."""
        self.check_is_fitted()
        rows, cols, lengths = ngram_buckets(pool, self.num_buckets, self.hash)
        scores = np.bincount(rows, weights=self.log_diff_[cols], minlength=len(pool))
        scores[lengths < self.min_length] = -np.inf
        return scores

    def order(self, scores: np.ndarray, info: PoolInfo) -> np.ndarray:
        """Gumbel top-k over the log weights (seeded), or the plain top-k order."""
        self.check_is_fitted()
        self._check_params()
        scores = np.asarray(scores, dtype=np.float64)
        self.pool_below_min_length_ = int(np.isneginf(scores).sum())
        if self.sampling == "top-k":
            return top_k(scores, len(scores), ascending=False)
        if np.isnan(scores).any():
            raise TunesiftError("scores contain NaN; the method failed to score some pool items")
        return gumbel_order(scores, self.seed)

    def diagnostics(self) -> dict[str, Any]:
        d: dict[str, Any] = {"num_buckets": self.num_buckets, "hash": self.hash}
        if hasattr(self, "log_diff_"):
            # KL(p_target || p_raw) with the weights' smoothing: the gap selection should close
            d["kl_target_raw"] = float(self.target_probs_ @ self.log_diff_)
            d["fit_pool_docs"], d["target_docs"] = self.fit_sizes_
            d["fit_pool_below_min_length"] = self.fit_below_min_length_
        if hasattr(self, "pool_below_min_length_"):
            d["pool_below_min_length"] = self.pool_below_min_length_
        return d

    def _bucket_totals(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Summed bucket counts over ``texts`` (int64) and each text's token count."""
        _, cols, lengths = ngram_buckets(texts, self.num_buckets, self.hash)
        return np.bincount(cols, minlength=self.num_buckets), lengths


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)
