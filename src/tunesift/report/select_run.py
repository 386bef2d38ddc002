"""A finished ``select`` run read back from its outputs, for the report: nothing is recomputed.

What a run leaves: the selected records (``--out``), their JSON sidecar (``<out>.meta.json``:
parameters, counts, timings, and since the report exists also the reading options, the feature
cache folders, the token-length histogram and the output paths), the scores of every pool item
(``--scores-out``, when asked) and the features in the cache. Each piece that is missing costs
the report the figures that need it, with a reason, never the report.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.corpus.corpus import Corpus
from tunesift.errors import InputError, TunesiftError
from tunesift.features.store import load_features_npy, open_cached

SIDECAR_SUFFIX = ".meta.json"


@dataclass
class SelectRun:
    """A select run's outputs. ``indices`` are pool rows in rank order; ``selected_scores`` their
    scores (NaN for a null); ``scores`` every pool item's, or None. ``x_pool``/``x_target`` are
    the run's features (memory-mapped) or None, ``why_not`` saying why for each missing piece."""

    sidecar_path: Path
    meta: dict[str, Any]
    indices: np.ndarray
    selected_scores: np.ndarray
    records: Sequence[dict[str, Any]]
    scores: np.ndarray | None = None
    x_pool: Any = None
    x_target: Any = None
    why_not: dict[str, str] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return str(self.meta.get("method", "?"))

    @property
    def pool_size(self) -> int:
        return int(self.meta.get("counts", {}).get("pool", 0))

    def corpus(self, role: str) -> Corpus | None:
        """The pool or target files, read the way the run read them (None if there were none)."""
        paths = (self.meta.get("inputs") or {}).get(role)
        if not paths:
            return None
        reading = dict(self.meta.get("reading") or {})
        reading.pop("on_bad", None)
        try:
            return Corpus(paths, on_bad="skip", source_fallback=role == "target", **reading)
        except TunesiftError:
            return None

    def record_text(self, rec: dict[str, Any]) -> str:
        """The text a selected record was scored on (its text field, or the run's template)."""
        reading = self.meta.get("reading") or {}
        template = reading.get("text_template")
        if template:
            try:
                return str(template.format(**rec))
            except (KeyError, IndexError, ValueError):
                pass
        value = rec.get(reading.get("text_field") or "text")
        return "" if value is None else str(value)


def find_sidecar(path: str | Path) -> Path:
    """``path`` itself when it is a sidecar, or the one ``*.meta.json`` inside a run folder."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob(f"*{SIDECAR_SUFFIX}"))
        if len(found) != 1:
            what = "no" if not found else f"{len(found)}"
            raise InputError(f"{what} select sidecars (*{SIDECAR_SUFFIX}) in this folder", p)
        return found[0]
    if not p.exists():
        raise InputError("no such file or directory", p)
    return p


def load_select_run(
    sidecar: str | Path, *, scores: np.ndarray | None = None, check_inputs: bool = True
) -> SelectRun:
    """Read a select run from its sidecar (``scores``: the pool's scores when already in hand).

    ``check_inputs`` compares the cached features' corpus fingerprint with the pool and target
    files as they are now, so that features of files changed since are not shown as theirs.
    """
    path = find_sidecar(sidecar)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a readable select sidecar ({exc})", path) from None
    if not isinstance(meta, dict) or "method" not in meta or "counts" not in meta:
        raise InputError("not a select sidecar (no method or counts)", path)
    outputs = meta.get("outputs") or {}
    records_path = Path(outputs.get("records") or str(path)[: -len(SIDECAR_SUFFIX)])
    if not path.name.endswith(SIDECAR_SUFFIX) and not outputs.get("records"):
        raise InputError(f"a select sidecar's name ends with {SIDECAR_SUFFIX}", path)
    records, indices, selected = read_selected_records(records_path)
    run = SelectRun(path, meta, indices, selected, records)
    n = run.pool_size
    if scores is None:
        scores = _read_scores(outputs.get("scores"), n, run.why_not)
    elif len(scores) != n:
        raise TunesiftError(f"{len(scores)} scores for a pool of {n}", param="scores")
    run.scores = None if scores is None else np.asarray(scores, dtype=np.float64)
    _attach_features(run, check_inputs)
    return run


class LazyRecords(Sequence[dict[str, Any]]):
    """The selected records, each parsed when first asked for: the report shows a dozen of
    them, and parsing 50,000 JSON lines in Python costs more than the rest of the reading."""

    def __init__(self, n: int, parse: Callable[[int], dict[str, Any]]):
        self._n, self._parse = n, parse
        self._done: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(self._n))]
        k = int(k) + (self._n if int(k) < 0 else 0)
        if not 0 <= k < self._n:
            raise IndexError(k)
        if k not in self._done:
            self._done[k] = self._parse(k)
        return self._done[k]


def read_selected_records(path: Path) -> tuple[Sequence[dict[str, Any]], np.ndarray, np.ndarray]:
    """The selected records (parsed lazily), their pool indices and their scores (NaN: null).

    The two columns are read by pyarrow's JSON reader (C++, only those fields); any line it
    cannot read (NaN literals, mixed types) sends the file through Python's ``json`` instead,
    which also names the bad line.
    """
    if not path.exists():
        raise InputError("the selected records named by the sidecar are missing", path)
    import pyarrow as pa

    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path).read(use_threads=False)
        if "index" not in table.column_names or table.column("index").null_count:
            raise InputError("selected records carry no 'index' field", path)
        scores = (
            column_values(table.column("score"), np.float64)
            if "score" in table.column_names
            else np.full(table.num_rows, np.nan)
        )
        indices = column_values(table.column("index"), np.int64)
        return (
            LazyRecords(table.num_rows, lambda k: table.slice(k, 1).to_pylist()[0]),
            indices,
            scores,
        )
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    try:
        import pyarrow.json as pj

        data = b"\n".join(lines)
        table = pj.read_json(
            io.BytesIO(data),
            # one block: a line longer than a block would fail the read
            read_options=pj.ReadOptions(use_threads=False, block_size=len(data) + 1),
            parse_options=pj.ParseOptions(
                explicit_schema=pa.schema([("index", pa.int64()), ("score", pa.float64())]),
                unexpected_field_behavior="ignore",
            ),
        )
    except (pa.ArrowException, ValueError):
        table = None
    if table is not None and table.num_rows == len(lines) and not table.column("index").null_count:
        indices = column_values(table.column("index"), np.int64)
        scores = column_values(table.column("score"), np.float64)
        return LazyRecords(len(lines), lambda k: json.loads(lines[k])), indices, scores
    rows = []
    for k, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise InputError("not a JSON line", f"{path}:{k}") from None
    if rows and any("index" not in r for r in rows):
        raise InputError("selected records carry no 'index' field", path)
    indices = np.array([int(r["index"]) for r in rows], dtype=np.int64)
    scores = np.array([_num(r.get("score")) for r in rows], dtype=np.float64)
    return rows, indices, scores


def column_values(column: Any, dtype: type) -> np.ndarray:
    """A pyarrow column as a numpy array of ``dtype``, a null as NaN (floats).

    Read from the column's buffers: pyarrow's own ``to_numpy`` imports pandas on its first call
    (0.4 s of CPU, more than reading a million scores; measured).
    """
    import pyarrow as pa

    arrow_type = pa.from_numpy_dtype(np.dtype(dtype))
    parts = []
    for chunk in column.chunks:
        chunk = chunk.cast(arrow_type)
        n, offset = len(chunk), chunk.offset
        validity, data = chunk.buffers()[:2]
        size = np.dtype(dtype).itemsize
        values: np.ndarray = np.frombuffer(data, dtype=dtype, count=n, offset=offset * size).copy()
        if chunk.null_count:
            bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
            if not np.issubdtype(np.dtype(dtype), np.floating):
                raise TunesiftError(f"{chunk.null_count} nulls in an integer column")
            values[bits[offset : offset + n] == 0] = np.nan
        parts.append(values)
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _read_scores(name: str | None, n: int, why_not: dict[str, str]) -> np.ndarray | None:
    """Every pool item's score from the ``--scores-out`` file, or None (reason in ``why_not``)."""
    if not name:
        why_not["scores"] = "the run wrote no scores file (select --scores-out)"
        return None
    path = Path(name)
    if not path.exists():
        why_not["scores"] = f"the scores file {path} is gone"
        return None
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path).read(columns=["score"], use_threads=False)
        values = column_values(table.column("score"), np.float64)  # a null reads as NaN
    elif suffix == ".csv":
        with path.open(encoding="utf-8") as fh:
            next(fh, None)  # the header
            values = np.array(
                [float(x.split(",")[1] or "nan") for x in fh if x.strip()], dtype=np.float64
            )
    else:
        with path.open(encoding="utf-8") as fh:
            values = np.array([_num(json.loads(x)["score"]) for x in fh if x.strip()])
    if len(values) != n:
        why_not["scores"] = f"the scores file holds {len(values)} rows, the pool {n}"
        return None
    return values


def _attach_features(run: SelectRun, check_inputs: bool) -> None:
    """The run's features: its precomputed .npy files, or its cache folders (never computed)."""
    inputs = run.meta.get("inputs") or {}
    cache = run.meta.get("features_cache") or {}
    for role in ("pool", "target"):
        x: Any = None
        reason = ""
        given = inputs.get(f"{role}_features")
        if given:
            try:
                x = load_features_npy(Path(given))
            except TunesiftError as exc:
                reason = f"the {role} features {given} cannot be read ({exc.message})"
        elif cache.get(role):
            corpus = run.corpus(role) if check_inputs else None
            fingerprint = _fingerprint(corpus)
            x = open_cached(cache[role], fingerprint)
            if x is None:
                reason = (
                    f"the {role} features are no longer in the cache ({cache[role]}), or the "
                    f"{role} files changed since the run; the report does not recompute them"
                )
        elif (run.meta.get("pca") or {}).get("dim"):
            reason = "the run projected its features (pca_dim), which are not cached"
        elif run.meta.get("featurizer") is None and "features_cache" in run.meta:
            reason = f"{run.method} reads texts: the run computed no features"
        else:
            reason = "the sidecar names no feature cache (written by an older tunesift)"
        expected = run.pool_size if role == "pool" else run.meta["counts"].get("target")
        if x is not None and expected is not None and len(x) != int(expected):
            x, reason = None, f"the {role} features hold {len(x)} rows, the run {expected}"
        setattr(run, f"x_{role}", x)
        if reason:
            run.why_not[f"{role}_features"] = reason


def _fingerprint(corpus: Corpus | None) -> str | None:
    if corpus is None:
        return None
    try:
        return corpus.fingerprint()
    except TunesiftError:
        return "missing"  # a file is gone: no cache can be shown as its features


def all_texts(corpus: Corpus, limit: int) -> list[str]:
    """The first ``limit`` texts of a corpus (the target: small)."""
    out: list[str] = []
    for batch in corpus.batches():
        out.extend(batch.texts)
        if len(out) >= limit:
            return out[:limit]
    return out
