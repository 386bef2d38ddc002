"""Hashed unigram + bigram counts: tunesift's one n-gram hasher (DSIR's feature space).

Xie et al. 2023 (DSIR), Sec. 4: a text is lowercased and split into WordPunct tokens (``\\w+`` or a
run of other non-space characters, nltk's ``WordPunctTokenizer``); its unigrams and bigrams (two
tokens joined by a space) are hashed into ``num_buckets`` buckets. Everything that counts hashed
n-grams reads them from here: the DSIR method, the ``ngrams`` featurizer, and the KL reduction
that ``compare`` reports (``report.metrics.kl_reduction``).

Two hashes of the same n-grams:
- ``"sha256"``: sha256 of the UTF-8 n-gram, mod ``num_buckets``: the ``data-selection`` package's
  buckets exactly (``get_ngram_counts``; tests/test_dsir.py pins ``'alice' -> 6720``).
- ``"fast"`` (default): a vectorised 64-bit polynomial hash of each token's code points, and a mix
  of the two token hashes for a bigram; no token string is ever built (see below). Same tokens and
  n-grams, other buckets; stable across processes and machines (no salted ``hash``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp

from tunesift.errors import TunesiftError

HashMode = Literal["fast", "sha256"]
HASH_MODES = ("fast", "sha256")

# nltk's WordPunctTokenizer pattern: a run of word characters or of other non-space characters.
_TOKEN = re.compile(r"\w+|[^\w\s]+")


def ngram_buckets(
    texts: Sequence[str], num_buckets: int, hash: HashMode = "fast"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unigram and bigram occurrence as (document row, bucket), and tokens per document."""
    if hash == "sha256":
        return _sha256_buckets(texts, num_buckets)
    if hash == "fast":
        return _fast_buckets(texts, num_buckets)
    raise TunesiftError(f"hash must be 'fast' or 'sha256', got {hash!r}")


def hashed_counts(
    texts: Sequence[str], num_buckets: int = 10_000, hash: HashMode = "fast"
) -> sp.csr_matrix:
    """Counts of hashed unigrams and bigrams: a (len(texts), num_buckets) int32 CSR matrix.

    ``hash="sha256"`` gives the ``data-selection`` package's buckets (``get_ngram_counts``);
    ``"fast"`` the vectorised hash ``DSIR`` uses by default.
    """
    rows, cols, _ = ngram_buckets(texts, num_buckets, hash)
    counts = sp.csr_matrix(
        (np.ones(len(cols), dtype=np.int32), (rows, cols)), shape=(len(texts), num_buckets)
    )
    counts.sum_duplicates()
    return counts


class HashedNgrams:
    """The ``ngrams`` featurizer: counts of hashed unigrams and bigrams, L2-normalized by default.

    The counts are ``hashed_counts`` (``hash="fast"`` by default, ``"sha256"`` for the package's
    buckets), as dense float32 rows.
    """

    #: documents per encode call when featurizing a corpus (calls have a fixed cost)
    piece_size = 4096

    def __init__(self, num_buckets: int = 10_000, normalize: bool = True, hash: HashMode = "fast"):
        if num_buckets < 1:
            raise ValueError("num_buckets must be positive")
        if hash not in HASH_MODES:
            raise ValueError(f"hash must be 'fast' or 'sha256', got {hash!r}")
        self.num_buckets = num_buckets
        self.normalize = normalize
        self.hash = hash
        self.id = f"ngrams-{hash}-b{num_buckets}-{'l2' if normalize else 'counts'}"

    @property
    def dim(self) -> int:
        return self.num_buckets

    def encode(
        self, texts: list[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.num_buckets), dtype=np.float32)
        rows, cols, _ = ngram_buckets(texts, self.num_buckets, self.hash)
        np.add.at(out, (rows, cols), 1.0)
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, norms, out=out, where=norms > 0)
        return out


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
