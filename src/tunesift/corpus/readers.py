"""One streaming reader per file format. Each yields ``(line_or_row, record_or_problem)``.

A reader never holds a whole file: JSONL, CSV and text are read line by line, Parquet and Hugging
Face datasets batch by batch. A row that cannot be read yields a ``Problem`` (its reason) instead
of a record, so the caller decides whether to stop or to skip and count it; nothing is dropped
silently. Blank lines of line-based formats are not records and are not counted. What makes a
whole file unreadable (a damaged gzip stream, a CSV header that repeats a column, a ``.json``
file holding one JSON array) raises ``InputError`` whatever the caller's ``on_bad``.

Line numbers are 1-based physical lines (a CSV row spanning lines is numbered by its first one);
Parquet and dataset rows are numbered 1-based too.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from tunesift.errors import InputError, Param


@dataclass(frozen=True)
class Problem:
    """Why a row could not be read (``param``: the reading option it concerns, if any)."""

    reason: str
    param: Param = None


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
_GZIP_OK = ("jsonl", "csv", "tsv", "txt")  # Parquet compresses inside the file
_HF_MARKERS = ("dataset_info.json", "state.json")
_BOM = b"\xef\xbb\xbf"
NOT_UTF8 = Problem("not valid UTF-8")


# ---- which reader ------------------------------------------------------------------------------


def resolve_format(path: Path, format: str | None = None) -> str:
    """The format to read ``path`` with, checked against what is on disk.

    Called when a corpus is built, so that a wrong path, extension or layout fails in a second
    rather than after the files before it have been embedded. Reads no file content.
    """
    if not path.exists():
        raise InputError("no such file or directory", path)
    if format is not None and format not in FORMATS:
        raise InputError(f"unknown format {format!r}; choose from {', '.join(FORMATS)}", path)
    if format is None:
        format = "hf" if path.is_dir() else _format_from_extension(path)
    if format == "hf":
        _check_hf_dir(path)
    elif path.is_dir():
        raise InputError(f"is a directory, but format {format!r} reads a file", path)
    return format


def _format_from_extension(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    fmt = _EXTENSIONS.get(suffixes[-2 if gzipped else -1]) if len(suffixes) > gzipped else None
    if fmt is None or (gzipped and fmt not in _GZIP_OK):
        raise InputError(
            "unknown format; use one of .jsonl .ndjson .json .parquet .csv .tsv .tab .txt .text "
            "(all but .parquet optionally .gz), a save_to_disk dataset directory, or choose one "
            f"of {', '.join(FORMATS)} with format",
            path,
        )
    return fmt


def _check_hf_dir(path: Path) -> None:
    if not path.is_dir():
        raise InputError("format 'hf' reads a directory written by datasets' save_to_disk", path)
    if (path / "dataset_dict.json").exists():
        try:
            splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        except (OSError, ValueError, KeyError, TypeError):
            splits = sorted(p.name for p in path.iterdir() if p.is_dir())
        raise InputError(
            f"this is a DatasetDict; give one split's directory instead ({', '.join(splits)})",
            path,
        )
    if not any((path / m).exists() for m in _HF_MARKERS):
        raise InputError(
            "a directory is only readable as a Hugging Face dataset saved with save_to_disk "
            f"(it holds {' or '.join(_HF_MARKERS)})",
            path,
        )
    if importlib.util.find_spec("datasets") is None:
        raise _needs_datasets(path)


def one_line(exc: BaseException) -> str:
    """An exception's text on one line (pyarrow and others write several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _needs_datasets(path: Path) -> InputError:
    return InputError(
        "reading a Hugging Face dataset needs the datasets package: pip install 'tunesift[hf]'",
        path,
    )


def source_name(path: Path) -> str:
    """The file's name without its format extensions: ``wiki.jsonl.gz`` -> ``wiki``.

    Only known extensions are removed, so ``news.2024-05.jsonl`` stays ``news.2024-05``.
    """
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    base, dot, ext = name.rpartition(".")
    if dot and base and f".{ext.lower()}" in _EXTENSIONS:
        name = base
    return name or path.name


def read_rows(path: Path, format: str) -> Iterator[Row]:
    """The rows of ``path`` read as ``format``; an I/O failure becomes an ``InputError``.

    A truncated or damaged gzip stream, or a file that vanishes mid-read, surfaces as
    ``OSError``/``EOFError``/``zlib.error`` from deep inside the reader: it is reported with the
    file and the last row read, instead of as a traceback.
    """
    last = 0
    try:
        for row in _READERS[format](path):
            last = row[0]
            yield row
    except (OSError, EOFError, zlib.error) as exc:
        where = f" after {'row' if format in ('parquet', 'hf') else 'line'} {last}" if last else ""
        raise InputError(f"cannot read{where}: {one_line(exc)}", path) from None


# ---- line formats ------------------------------------------------------------------------------


def _open_binary(path: Path) -> IO[bytes]:
    if path.suffix.lower() == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def _open_text(path: Path) -> IO[str]:
    # surrogateescape keeps undecodable bytes as lone surrogates, so a bad row can be reported
    # with its line number instead of failing the whole file at an unknown place; utf-8-sig drops
    # the byte-order mark spreadsheet programs write, which would otherwise rename column one.
    kwargs: dict[str, Any] = {"encoding": "utf-8-sig", "errors": "surrogateescape", "newline": ""}
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", **kwargs)
    return open(path, **kwargs)


def _has_surrogates(values: list[str]) -> bool:
    return any(any("\udc80" <= ch <= "\udcff" for ch in v) for v in values)


def _decoded_lines(path: Path) -> Iterator[tuple[int, str | Problem]]:
    """Non-blank lines with their 1-based numbers, each decoded as strict UTF-8 on its own.

    Splitting bytes on ``\\n`` before decoding keeps one bad byte from hiding where it is, and
    never splits on the Unicode line separators that may sit inside a JSON string.
    """
    with _open_binary(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            if not raw.strip():
                continue
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError:
                yield lineno, NOT_UTF8


def _has_lone_surrogate(obj: Any) -> bool:
    # JSON may spell any code point as a \uXXXX escape, lone surrogates included: they load into
    # a str that cannot be encoded again, and would fail a tokenizer or the output writer later.
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _json_array_error(path: Path, lineno: int) -> InputError:
    return InputError(
        "this is one JSON array, not JSON lines (one object per line); convert it first, e.g. "
        f"jq -c '.[]' {path.name} > {source_name(path)}.jsonl",
        path,
        lineno,
    )


def read_jsonl(path: Path) -> Iterator[Row]:
    first = True
    for lineno, line in _decoded_lines(path):
        if isinstance(line, Problem):
            yield lineno, line
            first = False
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if first and line.lstrip().startswith("["):
                raise _json_array_error(path, lineno) from None
            yield lineno, Problem(f"malformed JSON: {exc.msg} (column {exc.colno})")
            first = False
            continue
        if first and isinstance(obj, list) and obj and all(isinstance(o, dict) for o in obj):
            raise _json_array_error(path, lineno)
        first = False
        if not isinstance(obj, dict):
            yield lineno, Problem(f"a JSONL line must be an object, got {type(obj).__name__}")
        elif "\\u" in line and _has_lone_surrogate(obj):
            yield lineno, Problem("invalid Unicode: a \\u escape of a lone surrogate")
        else:
            yield lineno, obj


def read_txt(path: Path) -> Iterator[Row]:
    for lineno, line in _decoded_lines(path):
        yield lineno, line if isinstance(line, Problem) else {"text": line.rstrip("\r\n")}


def _allow_huge_fields() -> None:
    # The csv module caps a field at 128 KiB by default; one long document is not an error.
    try:
        csv.field_size_limit(sys.maxsize)
    except OverflowError:  # platforms whose C long is 32 bits
        csv.field_size_limit(2**31 - 1)


def _read_delimited(path: Path, delimiter: str) -> Iterator[Row]:
    kind = "TSV" if delimiter == "\t" else "CSV"
    _allow_huge_fields()
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"unreadable {kind} header: {exc}", path, 1) from None
        if _has_surrogates(header):
            raise InputError("header is not valid UTF-8", path, 1)
        repeated = sorted({c for c in header if header.count(c) > 1})
        if repeated:
            # dict(zip(...)) would keep only the last of them, silently dropping data
            raise InputError(
                f"the header repeats column(s) {', '.join(map(repr, repeated))}", path, 1
            )
        start = reader.line_num + 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, Problem(f"malformed {kind}: {exc}")
                start = reader.line_num + 1
                continue
            lineno, start = start, reader.line_num + 1
            if len(values) <= 1 and not "".join(values).strip():
                continue  # a blank (or whitespace-only) line
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


# ---- columnar formats --------------------------------------------------------------------------


def read_parquet(path: Path, batch_size: int = 4096) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"not a readable Parquet file ({one_line(exc)})", path) from None
    with pf:
        row = 0
        batches = pf.iter_batches(batch_size=batch_size)
        while True:
            try:
                batch = next(batches, None)
                recs = [] if batch is None else batch.to_pylist()
            except Exception as exc:  # a damaged page: ArrowInvalid, OSError, ... (fuzzing found)
                raise InputError(
                    f"damaged Parquet data after row {row}: {one_line(exc)}", path
                ) from None
            if batch is None:
                return
            for rec in recs:
                row += 1
                yield row, rec


def read_hf(path: Path, batch_size: int = 4096) -> Iterator[Row]:
    try:
        import datasets
    except ImportError:
        raise _needs_datasets(path) from None
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises several types for a damaged directory
        raise InputError(f"not a readable Hugging Face dataset ({one_line(exc)})", path) from None
    if isinstance(ds, datasets.DatasetDict):
        raise InputError(
            f"this is a DatasetDict; give one split's directory ({', '.join(ds)})", path
        )
    if ds.num_rows and not ds.column_names:
        raise InputError(f"the dataset has {ds.num_rows} rows but no columns", path)
    # a format saved with the dataset (numpy, torch...) would hand out arrays, not Python values
    ds = ds.with_format(None)
    row = 0
    for batch in ds.iter(batch_size=batch_size):
        columns = list(batch)
        for values in zip(*(batch[c] for c in columns), strict=True):
            row += 1
            yield row, dict(zip(columns, values, strict=True))


_READERS: dict[str, Callable[[Path], Iterator[Row]]] = {
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "csv": read_csv,
    "tsv": read_tsv,
    "txt": read_txt,
    "hf": read_hf,
}
