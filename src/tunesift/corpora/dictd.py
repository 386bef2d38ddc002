"""dictd databases (``/usr/share/dictd/<name>.index`` + ``.dict.dz``), and the small ones we use whole.

The index lists ``headword TAB offset TAB length`` with offset and length in dictd's base64
(alphabet A-Z a-z 0-9 + /, most significant digit first). ``.dict.dz`` is gzip-readable.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

from tunesift.corpora.text import clean

DICTD_DIR = Path("/usr/share/dictd")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(_B64)}


def b64_number(digits: str) -> int:
    """dictd's base64 number: ``b64_number('BQ+') == 1*64*64 + 16*64 + 62``."""
    value = 0
    for ch in digits:
        value = value * 64 + _B64_VALUE[ch]
    return value


def available(name: str) -> bool:
    return (DICTD_DIR / f"{name}.index").exists() and (DICTD_DIR / f"{name}.dict.dz").exists()


def iter_entries(name: str) -> Iterator[tuple[str, str]]:
    """``(headword, raw entry text)`` of every entry, skipping dictd's ``00-database`` records."""
    data = gzip.open(DICTD_DIR / f"{name}.dict.dz").read()
    seen: set[tuple[int, int]] = set()
    with open(DICTD_DIR / f"{name}.index", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0].startswith("00-database") or parts[0].startswith("00-"):
                continue
            span = (b64_number(parts[1]), b64_number(parts[2]))
            if span in seen:  # several headwords may point at one entry
                continue
            seen.add(span)
            start, length = span
            yield parts[0], data[start : start + length].decode("utf-8", errors="replace")


_BRACES = re.compile(r"[{}]")
_CATEGORY = re.compile(r"<([a-z][a-z ]{1,30})>")


def _body(headword: str, raw: str) -> str:
    """Drop the repeated headword line that starts dictd entries."""
    lines = raw.strip().splitlines()
    if lines and lines[0].strip().lower() == headword.strip().lower():
        lines = lines[1:]
    return "\n".join(lines)


def iter_foldoc() -> Iterator[dict[str, str]]:
    """FOLDOC entries; label = the entry's first ``<category>`` (language, networking, ...)."""
    for n, (word, raw) in enumerate(iter_entries("foldoc")):
        body = _body(word, raw)
        cat = _CATEGORY.search(body)
        text = clean(_BRACES.sub("", f"{word}: {body}"))
        yield {
            "id": f"foldoc:{n}",
            "text": text,
            "source": "foldoc",
            "label": cat.group(1) if cat else "",
        }


def iter_jargon() -> Iterator[dict[str, str]]:
    for n, (word, raw) in enumerate(iter_entries("jargon")):
        text = clean(_BRACES.sub("", f"{word}: {_body(word, raw)}"))
        yield {"id": f"jargon:{n}", "text": text, "source": "jargon", "label": ""}


def iter_devil() -> Iterator[dict[str, str]]:
    for n, (word, raw) in enumerate(iter_entries("devil")):
        text = clean(f"{word}: {_body(word, raw)}")
        yield {"id": f"devil:{n}", "text": text, "source": "devil", "label": ""}
