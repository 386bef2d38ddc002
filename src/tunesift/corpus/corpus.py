"""``Corpus``: the records of one or more files, streamed in batches, with every bad row accounted for."""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import re
import string
from collections.abc import Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tunesift.corpus.readers import Problem, read_rows, resolve_format, source_name
from tunesift.corpus.records import BadRecord, ReadReport, RecordBatch
from tunesift.errors import InputError

logger = logging.getLogger(__name__)

ON_BAD = ("error", "skip")

#: Part of the fingerprint, which keys feature caches: bump it whenever a change to the readers
#: or to ``Corpus`` changes which records are good or what their texts are, so that no cache
#: computed under the old reading is reused.
READING_VERSION = 1

_MAX_LISTED_FIELDS = 12


def _template_fields(template: str) -> list[str]:
    """The record fields ``template`` reads; ``InputError`` if it cannot work on any record.

    Checked once at construction, so that a typo fails before any reading, not as every record
    turning bad.
    """

    def invalid(why: str) -> InputError:
        return InputError(f"invalid text_template {template!r}: {why}", param="text_template")

    try:
        parsed = list(string.Formatter().parse(template))
        # a format spec may hold fields itself, as in {text:>{width}}
        parsed += [p for _, _, spec, _ in parsed if spec for p in string.Formatter().parse(spec)]
    except ValueError as exc:
        raise invalid(str(exc)) from None
    names: list[str] = []
    for _, name, _, conversion in parsed:
        if name is None:
            continue
        base = re.match(r"[^.\[]*", name).group(0)  # type: ignore[union-attr]  # always matches
        if not base or base.isdigit():
            raise invalid("fields must be named, like {prompt}")
        if conversion not in (None, "r", "s", "a"):
            raise invalid(f"unknown conversion !{conversion}")
        if base not in names:
            names.append(base)
    if not names:
        raise InputError(
            f"text_template {template!r} uses no field; name them in braces, like {{prompt}}",
            param="text_template",
        )
    return names


def _field_list(rec: dict[str, Any]) -> str:
    names = list(rec)
    if not names:
        return "no fields"
    more = ", ..." if len(names) > _MAX_LISTED_FIELDS else ""
    return "fields: " + ", ".join(map(str, names[:_MAX_LISTED_FIELDS])) + more


def _unique(
    parsed: tuple[str, str | None, str | None],
    seen: dict[str, int],
    line: int,
) -> tuple[str, str | None, str | None] | Problem:
    """``parsed``, or a Problem when its id came before in the same file (naming the line).

    Files are checked one by one: two datasets numbering their records 0, 1, ... each are
    a normal pool, while an id repeated inside one file is a broken key.
    """
    id_ = parsed[1]
    assert id_ is not None
    first = seen.setdefault(id_, line)
    if first == line:
        return parsed
    return Problem(f"duplicate id {id_!r} (first at line {first})")


def _new_batch() -> RecordBatch:
    return RecordBatch([], [], [], [], [], [])


class Corpus:
    """Records of one or more files (JSONL, Parquet, CSV/TSV, text, HF ``save_to_disk`` dirs).

    A record's ``index`` is its position among the good records of all files, in the order given;
    its ``source`` is ``record[source_field]``; without ``source_field``, the record's own
    ``source`` field when it has a non-empty one, else the file's name without its format
    extensions (``wiki.jsonl.gz`` -> ``wiki``). A record lacking ``source_field`` (or holding
    null there) is a bad record, unless ``source_fallback`` is set: then it falls back to the
    rule without ``source_field`` (own ``source``, else file name), as a target does, whose source
    only multi-task RDS+ reads. Its ``id`` is ``record[id_field]`` or
    ``<file name>:<line>``. Its text is ``record[text_field]``, or
    ``text_template.format_map(record)``. Every original field is kept, unchanged, in ``fields``.

    ``on_bad="error"`` raises an ``InputError`` naming file and line at the first bad row;
    ``on_bad="skip"`` counts it in ``report`` (by reason, with examples) and goes on. Either way
    no row is dropped silently: each non-blank row is a good record or a bad one.
    Paths, formats and the template are checked at construction, before any long work starts;
    ``format`` (one of ``readers.FORMATS``) overrides what the extensions say.
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
        source_fallback: bool = False,
    ):
        if isinstance(paths, (str, Path)):
            paths = [paths]
        self.paths: list[Path] = [Path(p) for p in paths]
        if not self.paths:
            raise InputError("no input files given")
        if on_bad not in ON_BAD:
            raise InputError(f"on_bad must be one of {', '.join(ON_BAD)}, got {on_bad!r}")
        self.formats: list[str] = [resolve_format(p, format) for p in self.paths]
        self._template_fields = [] if text_template is None else _template_fields(text_template)
        self.text_field = text_field
        self.id_field = id_field
        self.source_field = source_field
        self.source_fallback = source_fallback
        self.text_template = text_template
        self.on_bad = on_bad
        self.report = ReadReport()
        self._count: tuple[str, int] | None = None

    def __repr__(self) -> str:
        return f"Corpus({[str(p) for p in self.paths]!r}, text_field={self.text_field!r})"

    # ---- identity ------------------------------------------------------------------------------

    def reading_options(self) -> dict[str, Any]:
        """How the records are read (what a report needs to read them again the same way)."""
        keys = ("text_field", "id_field", "source_field", "text_template", "on_bad")
        return {k: getattr(self, k) for k in keys}

    def fingerprint(self) -> str:
        """sha256 of the reading options and each file's absolute path, size and mtime.

        Cheap (no content read), so it can key caches of anything computed from the records.
        ``on_bad`` is left out: it never changes the good records, only whether a bad one stops
        the read.
        """
        options = {
            "version": READING_VERSION,
            "text_field": self.text_field,
            "id_field": self.id_field,
            "source_field": self.source_field,
            "text_template": self.text_template,
            "formats": self.formats,
        }
        if self.source_fallback:  # only when set, so that existing caches keep their keys
            options["source_fallback"] = True
        if self.id_field is not None:  # an id repeated within a file is a bad record
            options["unique_ids"] = True
        h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
        for p in self.paths:
            files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
            for f in files:
                try:
                    st = f.stat()
                except FileNotFoundError:
                    raise InputError("no such file or directory", f) from None
                h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    # ---- reading -------------------------------------------------------------------------------

    def batches(self, batch_size: int = 1024) -> Iterator[RecordBatch]:
        """Good records in corpus order, ``batch_size`` at a time (the last batch fewer).

        ``report`` is reset when the pass starts and filled as it goes.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        return self._stream(batch_size)

    def count(self) -> int:
        """Number of good records (one pass, remembered while the files do not change)."""
        if self._count is not None and self._count[0] == self.fingerprint():
            return self._count[1]
        for _ in self._stream(8192):
            pass
        assert self._count is not None
        return self._count[1]

    def records_at(self, indices: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The records at the given corpus indices, read in one streaming pass.

        Returns ``{index: {"index", "id", "text", "source", "fields", "location"}}`` for exactly
        the wanted indices; the pass stops at the last one (``report`` then covers only what was
        read). Raises ``IndexError`` for an index with no good record.
        """
        wanted = {operator.index(i) for i in indices}
        found: dict[int, dict[str, Any]] = {}
        if not wanted:
            return found
        stream = self._stream(1024)
        try:
            for batch in stream:
                for k, idx in enumerate(batch.index):
                    if idx in wanted:
                        found[idx] = {
                            "index": idx,
                            "id": batch.ids[k],
                            "text": batch.texts[k],
                            "source": batch.sources[k],
                            "fields": batch.fields[k],
                            "location": batch.location[k],
                        }
                if len(found) == len(wanted):
                    break
        finally:
            stream.close()
        missing = sorted(wanted - found.keys())
        if missing:
            raise IndexError(
                f"no record at index {', '.join(map(str, missing[:10]))}"
                f"{', ...' if len(missing) > 10 else ''}: the corpus has {self.report.good} records"
            )
        return found

    def _stream(self, batch_size: int) -> Generator[RecordBatch, None, None]:
        fingerprint = self.fingerprint()
        report = self.report = ReadReport()
        batch = _new_batch()
        for path, fmt in zip(self.paths, self.formats, strict=True):
            key, name, stem = str(path), path.name, source_name(path)
            report.per_file.setdefault(key, 0)  # the same file given twice adds up
            first = True
            seen_ids: dict[str, int] = {}  # with --id-field: ids are unique within a file
            for line, rec in read_rows(path, fmt):
                parsed = rec if isinstance(rec, Problem) else self._parse(rec, path, first)
                first = False
                if self.id_field is not None and not isinstance(parsed, Problem):
                    parsed = _unique(parsed, seen_ids, line)
                if isinstance(parsed, Problem):
                    if self.on_bad == "error":
                        raise InputError(parsed.reason, path, line, param=parsed.param)
                    report.add_bad(BadRecord(key, line, parsed.reason))
                    continue
                assert isinstance(rec, dict)
                text, id_, source = parsed
                batch.index.append(report.good)
                batch.ids.append(id_ if id_ is not None else f"{name}:{line}")
                batch.texts.append(text)
                batch.sources.append(source if source is not None else stem)
                batch.fields.append(rec)
                batch.location.append((key, line))
                report.good += 1
                report.per_file[key] += 1
                if len(batch) >= batch_size:
                    yield batch
                    batch = _new_batch()
        if len(batch):
            yield batch
        self._count = (fingerprint, report.good)

    def _parse(
        self, rec: dict[str, Any], path: Path, first: bool
    ) -> tuple[str, str | None, str | None] | Problem:
        """``(text, id, source)`` of a record (``None``: the file's default), or why it is bad."""
        text = self._text(rec, path, first)
        if isinstance(text, Problem):
            return text
        id_ = None
        if self.id_field is not None:
            if self.id_field not in rec:
                return Problem(f"missing id field {self.id_field!r}")
            if rec[self.id_field] is None:
                return Problem(f"id field {self.id_field!r} is null")
            id_ = str(rec[self.id_field])
        source = None
        if self.source_field is not None and self.source_fallback:
            if rec.get(self.source_field) not in (None, ""):
                source = str(rec[self.source_field])
            elif rec.get("source") not in (None, ""):
                source = str(rec["source"])
        elif self.source_field is not None:
            if self.source_field not in rec:
                return Problem(f"missing source field {self.source_field!r}")
            if rec[self.source_field] is None:
                return Problem(f"source field {self.source_field!r} is null")
            source = str(rec[self.source_field])
        elif rec.get("source") not in (None, ""):
            source = str(rec["source"])
        return text, id_, source

    def _text(self, rec: dict[str, Any], path: Path, first: bool) -> str | Problem:
        if self.text_template is not None:
            for name in self._template_fields:
                if name not in rec:
                    return Problem(f"missing field {name!r} for text_template", "text_template")
                if rec[name] is None:  # would render as the word "None"
                    return Problem(f"field {name!r} is null for text_template", "text_template")
            try:
                text = self.text_template.format_map(rec)
            except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
                reason = f"text_template failed: {type(exc).__name__}: {exc}"
                return Problem(reason, "text_template")
        elif self.text_field not in rec:
            return Problem(self._missing_text(rec, path, first), ("text_field", "text_template"))
        else:
            text = rec[self.text_field]
            if not isinstance(text, str):
                return Problem(f"field {self.text_field!r} is not a string ({type(text).__name__})")
        if not text.strip():
            return Problem("empty text")
        return text

    def _missing_text(self, rec: dict[str, Any], path: Path, first: bool) -> str:
        reason = f"missing text field {self.text_field!r} ({_field_list(rec)})"
        if not first:
            return reason
        # The first record lacking it usually means the whole file names its text otherwise.
        hint = "; name the text field with text_field, or build the text with text_template"
        if self.on_bad == "error":
            return reason + hint
        logger.warning(
            "%s: the first record has no %r field (%s)%s",
            path,
            self.text_field,
            _field_list(rec),
            hint,
        )
        return reason
