"""A Selection: which pool rows a method chose, with scores, ranks and provenance, and its writers."""

from __future__ import annotations

import json
import platform
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunesift.errors import InputError
from tunesift.outputs import atomic_open, write_json_atomic

if TYPE_CHECKING:
    from tunesift.corpus.corpus import Corpus

#: Columns tunesift adds to every selected record; an original field of the same name is kept
#: under ``<name>_orig`` so that nothing is lost.
ADDED_FIELDS = ("index", "score", "rank")
RECORD_FORMATS = (".jsonl", ".parquet")
#: the best-scored pool items left out, kept in the sidecar with their text (at most
#: ``NEAR_MISS_CHARS`` characters) so that a report shows them without re-reading the pool
NEAR_MISSES, NEAR_MISS_CHARS = 5, 1000
SCORE_FORMATS = (".parquet", ".csv", ".jsonl")


@dataclass
class Selection:
    """The result of ``tunesift.select``.

    ``indices`` are pool rows, best first (``rank`` 1 is ``indices[0]``); ``scores`` holds every
    pool item's score (for GOT-D, its dual potential: lower is better).
    """

    method: str
    indices: np.ndarray
    scores: np.ndarray
    params: dict[str, Any]
    diagnostics: dict[str, Any]
    seed: int
    pool_size: int
    target_size: int
    pool: Corpus | None = None
    info: dict[str, Any] = field(default_factory=dict)
    _records: list[dict[str, Any]] | None = field(default=None, repr=False)
    _pool_sources: Counter[str] | None = field(default=None, repr=False)
    _near_misses: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def budget(self) -> int:
        return len(self.indices)

    @property
    def selected_scores(self) -> np.ndarray:
        return self.scores[self.indices]

    def records(self) -> list[dict[str, Any]]:
        """The selected records in rank order: original fields plus index, score and rank."""
        if self._records is None:
            self._collect()
        assert self._records is not None
        return self._records

    def pool_source_counts(self) -> Counter[str] | None:
        """How many pool records each source holds (None when the pool has no records)."""
        if self.pool is None:
            return None
        if self._pool_sources is None:
            self._collect()
        return self._pool_sources

    def selected_source_counts(self) -> Counter[str] | None:
        if self.pool is None:
            return None
        return Counter(r["source"] for r in self.records())

    def near_miss_rows(self, n: int = NEAR_MISSES) -> list[int]:
        """The ``n`` best-scored pool rows that were not selected, best first (by the method's
        score order; a method that orders by its own rule may have skipped better-scored rows)."""
        from tunesift.methods import METHODS

        method = METHODS.get(self.method)
        key = np.asarray(self.scores, dtype=np.float64)
        key = key.copy() if method is not None and method.ascending else -key
        key[~np.isfinite(key)] = np.inf
        key[np.asarray(self.indices, dtype=np.int64)] = np.inf
        n = min(n, int(np.isfinite(key).sum()))
        if n <= 0:
            return []
        best = np.argpartition(key, n - 1)[:n]
        return [int(i) for i in best[np.argsort(key[best], kind="stable")]]

    def near_misses(self) -> list[dict[str, Any]]:
        """``near_miss_rows`` with their scores, sources and texts (from the records pass)."""
        if self._near_misses is None:
            self._collect()
        assert self._near_misses is not None
        return self._near_misses

    def _collect(self) -> None:
        """One streaming pass over the pool: the selected records, the per-source counts and the
        near misses' texts."""
        rank_of = {int(i): r for r, i in enumerate(self.indices)}
        rows: list[dict[str, Any] | None] = [None] * len(self.indices)
        sources: Counter[str] = Counter()
        misses: dict[int, dict[str, Any]] = {
            i: {"index": i, "score": _finite(self.scores[i])} for i in self.near_miss_rows()
        }
        if self.pool is None:
            for r, i in enumerate(self.indices):
                rows[r] = {"index": int(i)}
        else:
            for batch in self.pool.batches():
                sources.update(batch.sources)
                for k, idx in enumerate(batch.index):
                    pos = rank_of.get(idx)
                    if pos is None:
                        if idx in misses:
                            text = batch.texts[k]
                            misses[idx]["source"] = batch.sources[k]
                            misses[idx]["text"] = text[:NEAR_MISS_CHARS]
                        continue
                    rec = {}
                    for name, value in batch.fields[k].items():
                        rec[f"{name}_orig" if name in ADDED_FIELDS else name] = value
                    rec.setdefault("source", batch.sources[k])
                    rec["index"] = idx
                    rows[pos] = rec
        missing = sum(row is None for row in rows)
        if missing:
            raise InputError(
                f"{missing} selected rows were not found when re-reading the pool; "
                "did a pool file change during the run?"
            )
        for r, row in enumerate(rows):
            assert row is not None
            row["score"] = _finite(self.scores[self.indices[r]])
            row["rank"] = r + 1
        self._records = [row for row in rows if row is not None]
        self._pool_sources = sources if self.pool is not None else None
        self._near_misses = list(misses.values())

    # ---- writers ------------------------------------------------------------------------------

    def write(self, path: str | Path) -> Path:
        """Write the selected records (JSONL or Parquet by extension), atomically."""
        path = Path(path)
        suffix = _suffix(path, RECORD_FORMATS, "Selection.write")
        records = self.records()
        if suffix == ".jsonl":
            with atomic_open(path, "w") as fh:
                for rec in records:
                    fh.write(json.dumps(rec, ensure_ascii=False, default=_jsonable) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            with atomic_open(path, "wb") as fh:
                pq.write_table(pa.Table.from_pylist(records), fh)
        return path

    def write_scores(self, path: str | Path) -> Path:
        """Every pool item's index and score (Parquet, CSV or JSONL by extension), atomically."""
        path = Path(path)
        suffix = _suffix(path, SCORE_FORMATS, "Selection.write_scores")
        index = np.arange(len(self.scores), dtype=np.int64)
        if suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({"index": index, "score": self.scores.astype(np.float64)})
            with atomic_open(path, "wb") as fh:
                pq.write_table(table, fh)
            return path
        with atomic_open(path, "w") as fh:
            if suffix == ".csv":
                fh.write("index,score\n")
                fh.writelines(
                    f"{i},{'' if v is None else repr(v)}\n"
                    for i, v in enumerate(map(_finite, self.scores.tolist()))
                )
            else:
                fh.writelines(
                    f'{{"index": {i}, "score": {json.dumps(v)}}}\n'
                    for i, v in enumerate(map(_finite, self.scores.tolist()))
                )
        return path

    def metadata(self) -> dict[str, Any]:
        """Provenance for the JSON sidecar: parameters, diagnostics, counts, versions."""
        import torch

        from tunesift._version import __version__

        pool_counts = self.pool_source_counts()
        sel_counts = self.selected_source_counts()
        return {
            "tunesift_version": __version__,
            "method": self.method,
            "params": self.params,
            "diagnostics": self.diagnostics,
            "seed": self.seed,
            "counts": {
                "pool": self.pool_size,
                "target": self.target_size,
                "selected": self.budget,
            },
            "pool_by_source": dict(sorted(pool_counts.items()))
            if pool_counts is not None
            else None,
            "selected_by_source": dict(sorted(sel_counts.items()))
            if sel_counts is not None
            else None,
            "near_misses": self.near_misses(),
            **self.info,
            "versions": {
                "python": sys.version.split()[0],
                "torch": torch.__version__,
                "numpy": np.__version__,
                "platform": platform.platform(),
            },
        }

    def write_metadata(self, path: str | Path) -> Path:
        """The provenance sidecar (JSON), atomically."""
        return write_json_atomic(path, self.metadata(), indent=2, default=_jsonable)


def token_length_histogram(lengths: np.ndarray, indices: np.ndarray) -> dict[str, list[int]]:
    """Pool and selection token counts on shared log-spaced bins (quarter octaves from 1; an
    empty text counts as 1): the report's length figure, without re-reading the pool."""
    lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
    top = int(lengths.max()) if len(lengths) else 1
    steps = int(np.ceil(4 * np.log2(top + 1))) + 1
    edges = np.unique(np.round(2.0 ** (np.arange(steps + 1) / 4)).astype(np.int64))
    pool, _ = np.histogram(lengths, bins=edges)
    selected, _ = np.histogram(lengths[np.asarray(indices, dtype=np.int64)], bins=edges)
    return {"edges": edges.tolist(), "pool": pool.tolist(), "selected": selected.tolist()}


def _finite(value: float) -> float | None:
    """A score for JSON/CSV: -inf (DSIR's too-short documents) and NaN become null."""
    value = float(value)
    return value if np.isfinite(value) else None


def check_output_format(path: str | Path, kind: str) -> None:
    """Fail before any work on an output path ``write`` (kind "records") or ``write_scores``
    (kind "scores") would refuse for its extension."""
    if kind == "records":
        _suffix(Path(path), RECORD_FORMATS, "Selection.write")
    else:
        _suffix(Path(path), SCORE_FORMATS, "Selection.write_scores")


def _suffix(path: Path, allowed: tuple[str, ...], func: str) -> str:
    """The extension of ``path``, the argument of ``func``, when it is one of ``allowed``."""
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise InputError(
            f"path must end with one of {', '.join(allowed)}", path, param="path", func=func
        )
    return suffix


def _jsonable(value: Any) -> Any:
    """JSON fallback for numpy scalars/arrays, paths and other values the readers may pass on."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="replace")
    return str(value)
