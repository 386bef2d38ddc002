"""ZIP-FIT: rank pool texts by how well they compress together with the target texts.

Obbad, Mlauzi, Miranda, Schaeffer, Obbad, Bedi, Koyejo. "ZIP-FIT: Embedding-Free Data Selection
via Compression-Based Alignment", 2024 (arXiv:2410.18194). Reference implementation: the PyPI
package ``zip-fit`` (stair-lab/ZIP-FIT), class ``ZIPFIT``.

Each pool text x is scored by its mean similarity to the target texts t_j:

    align(x) = mean_j [1 - NCD(x, t_j)],
    NCD(x, y) = (C(x ⊕ y) - min(C(x), C(y))) / max(C(x), C(y)),

with C the compressed length in bytes of the UTF-8 encoding and x ⊕ y the plain concatenation,
pool text first, no separator, exactly as the package computes it. Higher is better.

Differences from the package, all deliberate:
- the compression level is explicit and defaults to 9. The package's default gzip level is 0,
  which stores the bytes without compressing them: then C(s) = len(s) + 23 and the similarity
  collapses to 23 / (max(len x, len t) + 23), a ranking by length, shortest first (pinned by a
  test). The paper names no level; 9 is what ``gzip.compress`` uses when given none.
- the target is a seeded random sample of at most ``max_target`` texts (default 256), bounding
  the cost at pool size x 256 compressions; the package compares against every target text.
  ``max_target=None`` uses them all.
- scoring runs on threads, not processes: zlib, bz2 and lzma release the GIL while compressing,
  so threads scale like processes without pickling the target. Scores do not depend on n_jobs.
- gzip lengths come from ``zlib.compress(data, level, wbits=31)``, a gzip member with mtime 0:
  the same length as the package's ``gzip.compress`` (10-byte header, 8-byte trailer), but
  deterministic bytes. Lengths depend on the zlib build (zlib and zlib-ng differ), so the
  diagnostics record its version.
- texts are encoded with ``surrogatepass``: identical bytes for every valid string, where the
  package's strict encoding raises on a lone surrogate (which JSON input can carry).
- compressors: gzip, zlib (2-byte header, 4-byte trailer), bz2 and lzma, each at the given
  level (lzma: its preset; the package ignores its level for lzma and uses preset 6). The
  package's lz4, zstd and brotli would each need a dependency and are left out.
"""

from __future__ import annotations

import bz2
import lzma
import os
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.methods.base import Method

#: Pool rows per task handed to a scoring thread: big enough to amortize the task, small enough
#: to balance uneven text lengths across threads.
ROWS_PER_TASK = 64


def _gzip_size(data: bytes, level: int) -> int:
    return len(zlib.compress(data, level, 31))  # wbits 16 + 15: gzip container, mtime 0


def _zlib_size(data: bytes, level: int) -> int:
    return len(zlib.compress(data, level))


def _bz2_size(data: bytes, level: int) -> int:
    return len(bz2.compress(data, level))


def _lzma_size(data: bytes, level: int) -> int:
    return len(lzma.compress(data, preset=level))


#: Compressed length in bytes of ``data`` at ``level``, and the levels each compressor accepts.
COMPRESSORS: dict[str, tuple[Callable[[bytes, int], int], range]] = {
    "gzip": (_gzip_size, range(0, 10)),
    "zlib": (_zlib_size, range(0, 10)),
    "bz2": (_bz2_size, range(1, 10)),
    "lzma": (_lzma_size, range(0, 10)),
}


def _encode(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TunesiftError(f"ZIP-FIT scores texts, got a {type(text).__name__}")
    return text.encode("utf-8", "surrogatepass")


def _available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # the cores this process may run on (Linux)
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class ZipFit(Method):
    """ZIP-FIT selection by mean compression similarity (1 - NCD) to the target, highest first.

    Parameters
    ----------
    compressor : "gzip", "zlib", "bz2" or "lzma"
        The compressor whose output length stands in for information content.
    level : int
        Compression level (0-9; bz2 1-9). Level 0 of gzip/zlib stores without compressing and
        ranks by length only; the default 9 is ``gzip.compress``'s own default.
    max_target : int or None
        At most this many target texts (a seeded random sample) are compared with each pool
        text; the cost is pool size x max_target compressions. None uses the whole target.
    seed : int
        Seeds the target sample.
    n_jobs : int
        Scoring threads; -1 for one per available core. The scores do not depend on it.

    Attributes
    ----------
    target_rows_ : ndarray of int
        The target rows sampled (all of them when the target has at most ``max_target``).
    target_bytes_ : list of bytes
        Those texts, UTF-8 encoded (``surrogatepass``).
    target_sizes_ : ndarray of float
        Their compressed lengths C(t_j) in bytes.
    target_available_ : int
        Target texts given to ``fit``.
    """

    name = "zipfit"
    inputs = "texts"

    def __init__(
        self,
        compressor: str = "gzip",
        level: int = 9,
        max_target: int | None = 256,
        seed: int = 0,
        n_jobs: int = -1,
    ):
        self.compressor = compressor
        self.level = level
        self.max_target = max_target
        self.seed = seed
        self.n_jobs = n_jobs
        self._check_params()  # here too: a bad level fails before any embedding or reading

    def _check_params(self) -> None:
        compressor, level, max_target, n_jobs = (
            self.compressor, self.level, self.max_target, self.n_jobs,
        )  # fmt: skip
        if compressor not in COMPRESSORS:
            raise TunesiftError(
                f"compressor must be one of {', '.join(COMPRESSORS)}, got {compressor!r}",
                param="compressor",
            )
        levels = COMPRESSORS[compressor][1]
        if isinstance(level, bool) or not isinstance(level, int) or level not in levels:
            raise TunesiftError(
                f"level must be an integer from {levels[0]} to {levels[-1]} for {compressor}, "
                f"got {level!r}",
                param="level",
            )
        if max_target is not None and (
            isinstance(max_target, bool) or not isinstance(max_target, int) or max_target < 1
        ):
            raise TunesiftError(
                f"max_target must be a positive integer or None, got {max_target!r}",
                param="max_target",
            )
        if isinstance(n_jobs, bool) or not (n_jobs == -1 or n_jobs >= 1):
            raise TunesiftError(
                f"n_jobs must be -1 or a positive integer, got {n_jobs!r}", param="n_jobs"
            )

    def fit(self, pool: Sequence[str] | None, target: Sequence[str]) -> ZipFit:
        """Sample the target and compress each sampled text once. The pool is not needed."""
        self._check_params()  # set_params may have changed them since __init__
        if len(target) == 0:
            raise TunesiftError("ZIP-FIT needs at least one target text")
        rows = np.arange(len(target))
        if self.max_target is not None and len(target) > self.max_target:
            rng = np.random.default_rng(self.seed)
            rows = np.sort(rng.choice(len(target), size=self.max_target, replace=False))
        self.target_available_ = len(target)
        self.target_rows_ = rows
        self.target_bytes_ = [_encode(target[i]) for i in rows.tolist()]
        size = COMPRESSORS[self.compressor][0]
        self.target_sizes_ = np.array([size(t, self.level) for t in self.target_bytes_], float)
        return self

    def score(self, pool: Sequence[str]) -> np.ndarray:
        """Each text's mean similarity 1 - NCD to the sampled target texts (higher is better)."""
        self.check_is_fitted()
        n = len(pool)
        jobs = self.n_jobs if self.n_jobs > 0 else _available_cores()
        if jobs == 1 or n <= ROWS_PER_TASK:
            return self._score_rows(pool)
        starts = range(0, n, ROWS_PER_TASK)
        with ThreadPoolExecutor(max_workers=jobs) as ex:
            parts = ex.map(lambda s: self._score_rows(pool[s : s + ROWS_PER_TASK]), starts)
            return np.concatenate(list(parts))

    def _score_rows(self, texts: Sequence[str]) -> np.ndarray:
        size, level = COMPRESSORS[self.compressor][0], self.level
        targets, c_t = self.target_bytes_, self.target_sizes_
        out = np.empty(len(texts))
        for i, text in enumerate(texts):
            x = _encode(text)
            c_x = size(x, level)
            c_xt = np.fromiter((size(x + t, level) for t in targets), float, len(targets))
            ncd = (c_xt - np.minimum(c_x, c_t)) / np.maximum(c_x, c_t)
            # mean of the similarities, not 1 - mean NCD: the package's order of operations
            out[i] = np.mean(1.0 - ncd)
        return out

    def diagnostics(self) -> dict[str, Any]:
        d: dict[str, Any] = {"compressor": self.compressor, "level": self.level}
        if hasattr(self, "target_sizes_"):
            d["target_size"] = len(self.target_sizes_)
            d["target_available"] = self.target_available_
        if self.compressor in ("gzip", "zlib"):
            d["zlib_version"] = zlib.ZLIB_RUNTIME_VERSION
        return d
