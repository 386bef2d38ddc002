"""One streaming reader per file format. Each yields ``(line_or_row, record_or_problem)``.

A reader never holds a whole file: JSONL, CSV and text are read line by line, Parquet and Hugging
Face datasets batch by batch. A row that cannot be read yields a ``Problem`` (its reason) instead
of a record, so the caller decides whether to stop or to skip and count it; nothing is dropped
silently. Blank lines of line-based formats are not records and are not counted.
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tunesift.errors import InputError


@dataclass(frozen=True)
class Problem:
    """Why a row could not be read."""

    reason: str


Row = tuple[int, "dict[str, Any] | Problem"]

FORMATS = ("jsonl", "parquet", "csv", "tsv", "txt", "hf")
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "txt",
    ".text": "txt",
}
_HF_MARKERS = ("dataset_info.json", "state.json")


def detect_format(path: Path) -> str:
    """The format of ``path`` from its extension (``.gz`` allowed for line formats) or layout."""
    if path.is_dir():
        if any((path / m).exists() for m in _HF_MARKERS):
            return "hf"
        if (path / "dataset_dict.json").exists():
            splits = sorted(p.name for p in path.iterdir() if p.is_dir())
            raise InputError(
                f"this is a DatasetDict; give one split's directory ({', '.join(splits)})", path
            )
        raise InputError(
            "a directory is only readable as a Hugging Face dataset saved with save_to_disk", path
        )
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
        if suffixes and _EXTENSIONS.get(suffixes[-1]) not in ("jsonl", "csv", "tsv", "txt"):
            suffixes = []
    fmt = _EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise InputError(
            "unknown format; use one of .jsonl .ndjson .json .parquet .csv .tsv .txt (optionally "
            ".gz), a save_to_disk dataset directory, or --format",
            path,
        )
    return fmt


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def _open_text(path: Path) -> IO[str]:
    # surrogateescape keeps undecodable bytes as lone surrogates, so a bad row can be reported
    # with its line number instead of failing the whole file at an unknown place.
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape", newline="")
    return open(path, encoding="utf-8", errors="surrogateescape", newline="")


def _has_surrogates(values: Any) -> bool:
    return any(isinstance(v, str) and any("\udc80" <= ch <= "\udcff" for ch in v) for v in values)


NOT_UTF8 = Problem("not valid UTF-8")


def _decoded_lines(path: Path) -> Iterator[tuple[int, str | Problem]]:
    """Non-blank lines with their 1-based numbers, each decoded as strict UTF-8 on its own."""
    with _open_binary(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError:
                yield lineno, NOT_UTF8


def read_jsonl(path: Path) -> Iterator[Row]:
    for lineno, line in _decoded_lines(path):
        if isinstance(line, Problem):
            yield lineno, line
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, Problem(f"malformed JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            yield lineno, Problem(f"a JSONL line must be an object, got {type(obj).__name__}")
            continue
        yield lineno, obj


def read_txt(path: Path) -> Iterator[Row]:
    for lineno, line in _decoded_lines(path):
        yield lineno, line if isinstance(line, Problem) else {"text": line.rstrip("\r\n")}


def _read_delimited(path: Path, delimiter: str) -> Iterator[Row]:
    csv.field_size_limit(sys.maxsize)
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"unreadable header: {exc}", path, 1) from None
        if _has_surrogates(header):
            raise InputError("header is not valid UTF-8", path, 1)
        start = reader.line_num + 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, Problem(f"malformed {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}")
                start = reader.line_num + 1
                continue
            lineno, start = start, reader.line_num + 1
            if not values or all(not v.strip() for v in values):
                continue
            if _has_surrogates(values):
                yield lineno, NOT_UTF8
            elif len(values) != len(header):
                yield lineno, Problem(f"expected {len(header)} columns, got {len(values)}")
            else:
                yield lineno, dict(zip(header, values, strict=True))


def read_csv(path: Path) -> Iterator[Row]:
    return _read_delimited(path, ",")


def read_tsv(path: Path) -> Iterator[Row]:
    return _read_delimited(path, "\t")


def read_parquet(path: Path, batch_size: int = 4096) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"not a readable Parquet file ({exc})", path) from None
    row = 0
    for batch in pf.iter_batches(batch_size=batch_size):
        for rec in batch.to_pylist():
            row += 1
            yield row, rec


def read_hf(path: Path, batch_size: int = 4096) -> Iterator[Row]:
    try:
        import datasets
    except ImportError:
        raise InputError(
            "reading a Hugging Face dataset needs the datasets package: pip install 'tunesift[hf]'",
            path,
        ) from None
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        raise InputError(
            f"this is a DatasetDict; give one split's directory ({', '.join(ds)})", path
        )
    row = 0
    for batch in ds.iter(batch_size=batch_size):
        columns = list(batch)
        for values in zip(*(batch[c] for c in columns), strict=True):
            row += 1
            yield row, dict(zip(columns, values, strict=True))


READERS: dict[str, Callable[[Path], Iterator[Row]]] = {
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "csv": read_csv,
    "tsv": read_tsv,
    "txt": read_txt,
    "hf": read_hf,
}
