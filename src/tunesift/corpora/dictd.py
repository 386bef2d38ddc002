"""Shared reader for dictd databases: ``/usr/share/dictd/<name>.index`` + ``<name>.dict.dz``.

GCIDE, FOLDOC, the Jargon File and the Devil's Dictionary all ship in this format, so one reader
serves four sources. The index has one line per headword, ``headword TAB offset TAB length``,
with offset and length written in dictd's own base64 (digits ``A-Z a-z 0-9 + /``, most
significant first: not RFC 4648 decoding of bytes, a positional number). ``.dict.dz`` is dictzip,
which any gzip reader decompresses whole; that is faster here than seeking, since every entry is
read anyway.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

DICTD_DIR = Path("/usr/share/dictd")
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(B64_ALPHABET)}
# dictfmt's metadata records: "00-database-info", "00-gcide-short", "00databaseurl" (older dictfmt).
_META = re.compile(r"^00-?(database|gcide|web1913)", re.I)


def b64_number(digits: str) -> int:
    """dictd's base64 number: ``b64_number("BQ+") == 1 * 64**2 + 16 * 64 + 62``."""
    value = 0
    for ch in digits:
        try:
            value = value * 64 + _B64_VALUE[ch]
        except KeyError:
            raise ValueError(f"not a dictd base64 digit: {ch!r} in {digits!r}") from None
    return value


class IndexLine(NamedTuple):
    headword: str
    offset: int
    length: int


def parse_index(text: str) -> list[IndexLine]:
    """The index lines, without dictfmt's ``00-database-*`` metadata records."""
    lines = []
    for raw in text.splitlines():
        parts = raw.split("\t")
        if len(parts) < 3 or _META.match(parts[0]):
            continue
        lines.append(IndexLine(parts[0], b64_number(parts[1]), b64_number(parts[2])))
    return lines


def available(name: str, directory: Path = DICTD_DIR) -> bool:
    return (directory / f"{name}.index").is_file() and (directory / f"{name}.dict.dz").is_file()


def decode(raw: bytes) -> str:
    """UTF-8, except a few GCIDE entries that hold stray cp1252 bytes (curly quotes)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


class Entry(NamedTuple):
    headword: str
    text: str


def iter_entries(name: str, directory: Path = DICTD_DIR) -> Iterator[Entry]:
    """Every entry once, in index order, with the first headword that points at it.

    Several headwords often share one entry (GCIDE indexes ``8deg`` and ``eightvo`` to the same
    text); an entry is identified by its (offset, length) span, so it is yielded only once.
    """
    data = gzip.decompress((directory / f"{name}.dict.dz").read_bytes())
    index = parse_index((directory / f"{name}.index").read_text(encoding="utf-8", errors="replace"))
    seen: set[tuple[int, int]] = set()
    for line in index:
        span = (line.offset, line.length)
        if span in seen:
            continue
        seen.add(span)
        yield Entry(line.headword, decode(data[line.offset : line.offset + line.length]))


def strip_links(text: str) -> str:
    """dictd marks cross-references as ``{word}``: keep the word, drop the braces."""
    return text.replace("{", "").replace("}", "")


class IdMaker:
    """Stable ids ``<source>:<headword>:<n>``, n counting entries of one headword from 1.

    Ids depend only on the database file, not on any sampling, so a record keeps its id across
    builds with different seeds or caps.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._seen: Counter[str] = Counter()

    def __call__(self, headword: str) -> str:
        key = "_".join(headword.replace(":", " ").lower().split()) or "_"
        self._seen[key] += 1
        return f"{self.source}:{key}:{self._seen[key]}"
