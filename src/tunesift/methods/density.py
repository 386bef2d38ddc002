"""Density sampling: inverse-propensity sampling under a kernel density estimate, for coverage.

Sachdeva, Coleman, Kang, Ni, Hong, Chi, Caverlee, McAuley, Cheng. "How to Train Data-Efficient
LLMs" (2024, arXiv:2402.09668), Sec. 3 ("Density sampling"). No official code was released; the
paper's description is followed.

The paper's sampler boosts the rare parts of the pool and thins out the redundant, dense ones: a
first pass over the pool's embeddings builds a kernel density estimate, a second scores every row
with it, and rows are sampled with probability inversely proportional to their density (inverse
propensity sampling). The density is a kernel sum estimated with a locality-sensitive-hashing
sketch (the RACE sketch of Coleman and Shrivastava, 2020): R independent hash functions, each a
row of bucket counts; a point's estimate is the mean count of the buckets it hashes to,

    density(x) = 1 / (R N) * sum_r C[r, h_r(x)]
               ≈ 1 / N * sum_j k(x, x_j),   k(x, y) = P[h(x) = h(y)],

an unbiased estimate of the kernel sum over the N pool rows whose kernel is the hash family's
collision probability. Here each h_r is K signed random projections (Charikar's SimHash,
angular LSH): a bucket is the K sign bits of x·w_{r,k}, so k(x, y) = (1 - θ(x, y) / π)^K with
θ the angle between x and y. The score reported per row is the log of its inverse-propensity
weight, -log density(x); ``order`` samples without replacement proportionally to the weights
(Gumbel top-k, seeded), so every prefix is a sample of that size.

What we keep: the two passes (sketch, then score), the kernel sum estimated by an LSH count
sketch, the inverse-propensity weights. What we choose, the paper leaving it open here:
- signed random projections, whose kernel depends on the angle only, as the sentence embeddings'
  cosine does, and has no bandwidth to tune; ``n_bits`` (K) sets how local the kernel is;
- every pool row enters the sketch, so a pool row's own hash counts it once (the kernel sum
  includes k(x, x) = 1, as the sum over the data set does); a row outside the pool whose buckets
  are all empty gets the floor of one collision, 1 / (R N), instead of an infinite weight;
- ``sampling="lowest"`` takes the rarest rows first, deterministically, instead of sampling.
Density ignores the target: it selects for coverage of the pool, not for closeness to a target.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.methods.base import Method, PoolInfo, gumbel_order, top_k

#: pool rows hashed at a time (a (rows, R·K) float32 projection)
_BLOCK = 8192
_SAMPLING = ("ips", "lowest")


class Density(Method):
    """Inverse-propensity sampling under an LSH kernel density estimate of the pool.

    Parameters
    ----------
    n_hashes : int
        R, the independent hash functions of the sketch (rows of counts): more give a less noisy
        estimate (its variance falls as 1/R).
    n_bits : int
        K, the signed random projections per hash (1 to 20; 2^K buckets per hash): the kernel is
        (1 - θ/π)^K, so more bits make it more local.
    sampling : "ips" or "lowest"
        "ips": sample without replacement with probability proportional to 1 / density (the
        paper's); "lowest": the least dense rows first, no sampling.
    seed : int
        Seeds the projections and the sampling.

    Attributes
    ----------
    planes_ : ndarray of shape (n_hashes * n_bits, d), float32
        The random projection directions, hash r's bits in rows r*K ... r*K + K - 1.
    counts_ : ndarray of shape (n_hashes, 2**n_bits), int64
        The sketch: how many pool rows fell in each bucket of each hash.
    n_fit_ : int
        Pool rows in the sketch (N).
    """

    name = "density"

    def __init__(self, n_hashes: int = 64, n_bits: int = 8, sampling: str = "ips", seed: int = 0):
        self.n_hashes = n_hashes
        self.n_bits = n_bits
        self.sampling = sampling
        self.seed = seed
        self._check_params()

    def _check_params(self) -> None:
        if (
            isinstance(self.n_hashes, bool)
            or not isinstance(self.n_hashes, int)
            or self.n_hashes < 1
        ):
            raise TunesiftError(
                f"n_hashes must be a positive integer, got {self.n_hashes!r}", param="n_hashes"
            )
        bits = self.n_bits
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 20:
            raise TunesiftError(
                f"n_bits must be an integer from 1 to 20, got {bits!r}", param="n_bits"
            )
        if self.sampling not in _SAMPLING:
            raise TunesiftError(
                f"sampling must be 'ips' or 'lowest', got {self.sampling!r}", param="sampling"
            )

    def _buckets(self, x: np.ndarray) -> np.ndarray:
        """(rows, R) int64: each row's bucket under each hash (its K sign bits as a number)."""
        proj = np.asarray(x, dtype=np.float32) @ self.planes_.T
        bits = (proj > 0).reshape(len(proj), self.n_hashes, self.n_bits)
        weights = np.left_shift(np.int64(1), np.arange(self.n_bits, dtype=np.int64))
        return bits.astype(np.int64) @ weights

    def fit(self, pool: Any, target: Any = None) -> Density:
        """Sketch the pool: hash every row R times and count the rows in each bucket."""
        self._check_params()
        if pool is None or np.ndim(pool) != 2 or len(pool) == 0:
            raise TunesiftError("density needs the pool's feature rows (an (n, d) array)")
        rng = np.random.default_rng(self.seed)
        d = int(pool.shape[1])
        self.planes_ = rng.standard_normal((self.n_hashes * self.n_bits, d)).astype(np.float32)
        counts = np.zeros((self.n_hashes, 1 << self.n_bits), dtype=np.int64)
        hashes = np.arange(self.n_hashes)
        for s in range(0, len(pool), _BLOCK):
            b = self._buckets(pool[s : s + _BLOCK])
            np.add.at(counts, (np.broadcast_to(hashes, b.shape), b), 1)
        self.counts_ = counts
        self.n_fit_ = int(len(pool))
        return self

    def density(self, x: Any) -> np.ndarray:
        """The sketch's kernel density estimate of each row, float64, floored at 1 / (R N)."""
        self.check_is_fitted()
        out = np.empty(len(x), dtype=np.float64)
        hashes = np.arange(self.n_hashes)
        for s in range(0, len(x), _BLOCK):
            b = self._buckets(x[s : s + _BLOCK])
            out[s : s + len(b)] = self.counts_[hashes, b].sum(axis=1)
        return np.maximum(out, 1.0) / (self.n_hashes * self.n_fit_)

    def score(self, pool: Any) -> np.ndarray:
        """log of each row's inverse-propensity weight, -log density (higher: rarer)."""
        return -np.log(self.density(pool))

    def order(self, scores: np.ndarray, info: PoolInfo) -> np.ndarray:
        """Sampling without replacement proportional to 1 / density ("ips"), or rarest first."""
        self.check_is_fitted()
        if self.sampling == "lowest":
            return top_k(scores, len(scores), ascending=False)
        return gumbel_order(np.asarray(scores, dtype=np.float64), self.seed)

    def diagnostics(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kernel": f"(1 - angle/pi)^{self.n_bits}"}
        if hasattr(self, "counts_"):
            d["fit_rows"] = self.n_fit_
            d["buckets_used_per_hash"] = round(float((self.counts_ > 0).sum(axis=1).mean()), 2)
        return d
