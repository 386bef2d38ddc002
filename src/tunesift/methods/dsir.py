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

import hashlib
import numbers
import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from tunesift.errors import TunesiftError
from tunesift.methods.base import Method, PoolInfo, gumbel_order, top_k

HashMode = Literal["fast", "sha256"]
HASH_MODES = ("fast", "sha256")
SAMPLINGS = ("gumbel", "top-k")
#: Added to both probabilities before the log, as the package does.
SMOOTHING = 1e-8

# nltk's WordPunctTokenizer pattern: a run of word characters or of other non-space characters.
_TOKEN = re.compile(r"\w+|[^\w\s]+")


def hashed_counts(
    texts: Sequence[str], num_buckets: int = 10_000, hash: HashMode = "fast"
) -> sp.csr_matrix:
    """Counts of hashed unigrams and bigrams: a (len(texts), num_buckets) int32 CSR matrix.

    ``hash="sha256"`` gives the ``data-selection`` package's buckets (``get_ngram_counts``);
    ``"fast"`` the vectorised hash ``DSIR`` uses by default.
    """
    rows, cols, _ = _ngram_buckets(texts, num_buckets, hash)
    counts = sp.csr_matrix(
        (np.ones(len(cols), dtype=np.int32), (rows, cols)), shape=(len(texts), num_buckets)
    )
    counts.sum_duplicates()
    return counts


def kl_reduction(target_counts: Any, raw_counts: Any, selected_counts: Any) -> float:
    """KL(p_target || p_raw) - KL(p_target || p_selected) over hashed n-gram buckets.

    The paper's measure of how much closer a selection is to the target than the raw pool,
    smoothed like the importance weights: KL(p || q) = sum p (log(p + 1e-8) -
    log(q + 1e-8)). Each argument is a per-document count matrix (dense or sparse, e.g. from
    ``hashed_counts``) or a 1-D vector of bucket totals.
    """
    p_target = _distribution(target_counts, "target")
    p_raw = _distribution(raw_counts, "raw")
    p_selected = _distribution(selected_counts, "selected")
    if not len(p_target) == len(p_raw) == len(p_selected):
        raise TunesiftError("target, raw and selected counts must have the same number of buckets")
    return _kl(p_target, p_raw) - _kl(p_target, p_selected)


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
            raise TunesiftError(f"num_buckets must be an integer, got {self.num_buckets!r}")
        if self.num_buckets < 1:
            raise TunesiftError(f"num_buckets must be positive, got {self.num_buckets}")
        if self.hash not in HASH_MODES:
            raise TunesiftError(f"hash must be 'fast' or 'sha256', got {self.hash!r}")
        if not _is_int(self.min_length):
            raise TunesiftError(f"min_length must be an integer, got {self.min_length!r}")
        if self.min_length < 0:
            raise TunesiftError(f"min_length must be >= 0, got {self.min_length}")
        if self.sampling not in SAMPLINGS:
            raise TunesiftError(f"sampling must be 'gumbel' or 'top-k', got {self.sampling!r}")

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
        rows, cols, lengths = _ngram_buckets(pool, self.num_buckets, self.hash)
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
        _, cols, lengths = _ngram_buckets(texts, self.num_buckets, self.hash)
        return np.bincount(cols, minlength=self.num_buckets), lengths


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _distribution(counts: Any, what: str) -> np.ndarray:
    """Bucket probabilities from a count matrix (rows: documents) or a vector of totals."""
    totals = counts.sum(axis=0) if sp.issparse(counts) or np.ndim(counts) == 2 else counts
    totals = np.asarray(totals, dtype=np.float64).ravel()
    total = totals.sum()
    if total <= 0:
        raise TunesiftError(f"the {what} counts are empty")
    return totals / total


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(p @ (np.log(p + SMOOTHING) - np.log(q + SMOOTHING)))


def _ngram_buckets(
    texts: Sequence[str], num_buckets: int, hash: HashMode
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unigram and bigram occurrence as (document row, bucket), and tokens per document."""
    if hash == "sha256":
        return _sha256_buckets(texts, num_buckets)
    if hash == "fast":
        return _fast_buckets(texts, num_buckets)
    raise TunesiftError(f"hash must be 'fast' or 'sha256', got {hash!r}")


def _sha256_buckets(
    texts: Sequence[str], num_buckets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The package's buckets: sha256 of the UTF-8 n-gram (bigram: tokens joined by a space)."""
    cache: dict[str, int] = {}  # hashing dominates; n-grams repeat a lot

    def bucket(gram: str) -> int:
        b = cache.get(gram)
        if b is None:
            digest = hashlib.sha256(gram.encode("utf-8")).digest()
            b = cache[gram] = int.from_bytes(digest, "big") % num_buckets
        return b

    rows: list[int] = []
    cols: list[int] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        tokens = _TOKEN.findall(text.lower())
        grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]
        cols.extend(map(bucket, grams))
        rows.extend([i] * len(grams))
        lengths[i] = len(tokens)
    return np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp), lengths


# --- the fast hash -------------------------------------------------------------------------------
#
# Tokenising with a regex costs a Python string per token; instead the lowercased texts are joined
# into one array of code points, each classified as space / word / other (the classes behind the
# WordPunct regex), and tokens are the maximal runs of one non-space class. A token's hash is a
# polynomial over its code points read off prefix sums, so no token string is ever built.

_U64 = np.uint64
_SPACE, _WORD, _OTHER, _UNKNOWN = 0, 1, 2, 255
# Class of every code point, filled lazily for the code points met so far.
_CLASS = np.full(0x110000, _UNKNOWN, dtype=np.uint8)
_BASE = 0x100000001B3  # odd, so invertible modulo 2**64
_BASE_INV = pow(_BASE, -1, 2**64)
# (_BASE**i, _BASE**-i) for i < their length, grown on demand
_power_cache = (np.ones(1, dtype=_U64), np.ones(1, dtype=_U64))
# Documents are processed in chunks of about this many characters, bounding the temporaries.
_CHUNK_CHARS = 1 << 20


def _classify(codes: np.ndarray) -> np.ndarray:
    """Space / word / other class of each code point, as Python's ``re`` sees ``\\s`` and ``\\w``."""
    cls = _CLASS[codes]
    unknown = cls == _UNKNOWN
    if unknown.any():
        for c in np.unique(codes[unknown]).tolist():
            ch = chr(c)
            _CLASS[c] = _SPACE if ch.isspace() else _WORD if ch.isalnum() or ch == "_" else _OTHER
        cls = _CLASS[codes]
    return cls


def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**i and BASE**-i (mod 2**64) for i < n, cached up to twice the chunk size."""
    global _power_cache
    cached = _power_cache
    if len(cached[0]) >= n:
        return cached
    size = max(n, min(2 * len(cached[0]), 2 * _CHUNK_CHARS))
    tables = []
    for base in (_BASE, _BASE_INV):
        table = np.full(size, base, dtype=_U64)
        table[0] = 1
        tables.append(np.cumprod(table))  # wraps modulo 2**64, as intended
    if size <= 2 * _CHUNK_CHARS:  # a giant document's tables are not kept
        _power_cache = (tables[0], tables[1])
    return tables[0], tables[1]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the whole word (in place)."""
    x ^= x >> _U64(30)
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


def _fast_buckets(
    texts: Sequence[str], num_buckets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lowered = [t.lower() for t in texts]
    sizes = np.fromiter(map(len, lowered), dtype=np.int64, count=len(lowered))
    # character offsets of each document in the full join (documents are joined by one space)
    ends = np.cumsum(sizes + 1)
    starts = ends - sizes - 1
    bounds = [0]
    while bounds[-1] < len(lowered):
        lo = bounds[-1]
        hi = int(np.searchsorted(ends, starts[lo] + _CHUNK_CHARS, side="right"))
        bounds.append(min(max(hi, lo + 1), len(lowered)))  # a long document is a chunk alone
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        r, c, n = _fast_chunk(lowered[lo:hi], sizes[lo:hi], num_buckets)
        rows.append(r + lo)
        cols.append(c)
        lengths.append(n)
    if not rows:
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(lengths)


def _fast_chunk(
    lowered: list[str], sizes: np.ndarray, num_buckets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    joined = " ".join(lowered)
    # surrogatepass: a lone surrogate is an "other" character to re, not an error
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    if len(codes) == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(len(lowered), np.int64)
    cls = _classify(codes)
    # runs of equal class; the non-space ones are the tokens
    run_starts = np.flatnonzero(np.concatenate(([True], cls[1:] != cls[:-1])))
    run_ends = np.append(run_starts[1:], len(codes))
    is_token = cls[run_starts] != _SPACE
    starts, ends = run_starts[is_token], run_ends[is_token]

    powers, inv_powers = _power_tables(len(codes))
    prefix = np.zeros(len(codes) + 1, dtype=_U64)
    np.cumsum(codes * powers[: len(codes)], out=prefix[1:])
    # sum of code[s + i] * BASE**i: the token's polynomial, wherever it sits; its length goes in
    # too, since a polynomial cannot tell "\0" from "\0\0"
    token_hash = (prefix[ends] - prefix[starts]) * inv_powers[starts]
    token_hash ^= (ends - starts).astype(_U64) * _U64(0x9E3779B97F4A7C15)
    token_hash = _mix(token_hash)

    doc_starts = np.zeros(len(lowered), dtype=np.int64)
    np.cumsum(sizes[:-1] + 1, out=doc_starts[1:])
    doc = np.searchsorted(doc_starts, starts, side="right") - 1
    same_doc = doc[1:] == doc[:-1]
    bigram_hash = _mix(
        token_hash[:-1][same_doc] * _U64(0xD6E8FEB86659FD93) ^ token_hash[1:][same_doc]
    )

    buckets = _U64(num_buckets)
    cols = np.concatenate((token_hash % buckets, bigram_hash % buckets)).astype(np.intp)
    rows = np.concatenate((doc, doc[:-1][same_doc])).astype(np.intp)
    return rows, cols, np.bincount(doc, minlength=len(lowered)).astype(np.int64)
