"""``Corpus``: the records of one or more files, streamed in batches, with every bad row accounted for."""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tunesift.corpus.readers import FORMATS, READERS, Problem, detect_format
from tunesift.corpus.records import BadRecord, ReadReport, RecordBatch
from tunesift.errors import InputError


def _stem(path: Path) -> str:
    """File name without extensions: ``wiki.jsonl.gz`` -> ``wiki``."""
    name = path.name
    return name.split(".", 1)[0] or name


class Corpus:
    """Records of one or more files (JSONL, Parquet, CSV/TSV, text, HF ``save_to_disk`` dirs).

    A record's ``index`` is its position among the good records of all files, in the order given;
    its ``source`` is ``record[source_field]``; without ``source_field``, the record's own
    ``source`` field when it has one, else the file's stem (``wiki.jsonl.gz`` -> ``wiki``); its ``id`` is
    ``record[id_field]`` or ``<file name>:<line>``. Its text is ``record[text_field]``, or
    ``text_template.format_map(record)``. Every original field is kept in ``fields``.

    ``on_bad="error"`` raises an ``InputError`` naming file and line at the first bad row;
    ``on_bad="skip"`` counts it in ``report`` (by reason, with examples) and goes on.
    Paths and formats are checked at construction, before any long work starts.
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        text_field: str = "text",
        id_field: str | None = None,
        source_field: str | None = None,
        text_template: str | None = None,
        on_bad: str = "error",
        format: str | None = None,
    ):
        if isinstance(paths, (str, Path)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InputError("no input files given")
        if on_bad not in ("error", "skip"):
            raise InputError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
        if format is not None and format not in FORMATS:
            raise InputError(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")
        self.formats = []
        for p in self.paths:
            if not p.exists():
                raise InputError("no such file or directory", p)
            self.formats.append(format or detect_format(p))
        self.template_fields: list[str] = []
        if text_template is not None:
            try:
                self.template_fields = [
                    name for _, name, _, _ in string.Formatter().parse(text_template) if name
                ]
            except ValueError as exc:
                raise InputError(f"invalid --text-template {text_template!r}: {exc}") from None
        self.text_field = text_field
        self.id_field = id_field
        self.source_field = source_field
        self.text_template = text_template
        self.on_bad = on_bad
        self.report = ReadReport()
        self._count: tuple[str, int] | None = None

    def __repr__(self) -> str:
        return f"Corpus({[str(p) for p in self.paths]!r}, text_field={self.text_field!r})"

    # ---- identity ------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {
            "text_field": self.text_field,
            "id_field": self.id_field,
            "source_field": self.source_field,
            "text_template": self.text_template,
            "on_bad": self.on_bad,
            "formats": self.formats,
        }

    def fingerprint(self) -> str:
        """sha256 of the options and each file's absolute path, size and mtime (no content read)."""
        h = hashlib.sha256(json.dumps(self._options(), sort_keys=True).encode())
        for p in self.paths:
            files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
            for f in files:
                st = f.stat()
                h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    # ---- reading -------------------------------------------------------------------------------

    def _bad(self, path: Path, line: int, reason: str) -> None:
        if self.on_bad == "error":
            raise InputError(reason, path, line)
        self.report.add_bad(BadRecord(str(path), line, reason))

    def _text(self, rec: dict[str, Any]) -> str | Problem:
        if self.text_template is not None:
            for name in self.template_fields:
                if name not in rec:
                    return Problem(f"missing field {name!r} for --text-template")
            try:
                return self.text_template.format_map(rec)
            except (KeyError, IndexError, ValueError, AttributeError) as exc:
                return Problem(f"--text-template failed: {exc}")
        if self.text_field not in rec:
            fields = ", ".join(list(rec)[:12])
            return Problem(
                f"missing text field {self.text_field!r} (fields: {fields}); "
                "use --text-field or --text-template"
            )
        text = rec[self.text_field]
        if not isinstance(text, str):
            return Problem(f"field {self.text_field!r} is not a string ({type(text).__name__})")
        return text

    def batches(self, batch_size: int = 1024) -> Iterator[RecordBatch]:
        """Good records in corpus order, ``batch_size`` at a time; resets ``report`` first."""
        self.report = ReadReport()
        batch = RecordBatch([], [], [], [], [], [])
        index = 0
        for path, fmt in zip(self.paths, self.formats, strict=True):
            stem, name, good_here = _stem(path), path.name, 0
            for line, rec in READERS[fmt](path):
                if isinstance(rec, Problem):
                    self._bad(path, line, rec.reason)
                    continue
                text = self._text(rec)
                if isinstance(text, Problem):
                    self._bad(path, line, text.reason)
                    continue
                if not text.strip():
                    self._bad(path, line, "empty text")
                    continue
                if self.id_field is not None and self.id_field not in rec:
                    self._bad(path, line, f"missing id field {self.id_field!r}")
                    continue
                if self.source_field is not None and self.source_field not in rec:
                    self._bad(path, line, f"missing source field {self.source_field!r}")
                    continue
                batch.index.append(index)
                batch.ids.append(str(rec[self.id_field]) if self.id_field else f"{name}:{line}")
                batch.texts.append(text)
                if self.source_field is not None:
                    source = str(rec[self.source_field])
                else:
                    source = str(rec["source"]) if rec.get("source") not in (None, "") else stem
                batch.sources.append(source)
                batch.fields.append(rec)
                batch.location.append((str(path), line))
                index += 1
                good_here += 1
                if len(batch) >= batch_size:
                    yield batch
                    batch = RecordBatch([], [], [], [], [], [])
            self.report.per_file[str(path)] = good_here
        self.report.good = index
        if len(batch):
            yield batch
        self._count = (self.fingerprint(), index)

    def count(self) -> int:
        """Number of good records (one pass, remembered while the files do not change)."""
        if self._count is not None and self._count[0] == self.fingerprint():
            return self._count[1]
        for _ in self.batches(8192):
            pass
        assert self._count is not None
        return self._count[1]
