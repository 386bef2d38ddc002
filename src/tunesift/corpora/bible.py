"""King James Bible verses (Debian ``bible-kjv``), labelled by book."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

from tunesift.corpora.text import clean

_CHAPTER = re.compile(r"^(\S.*?) (\d+)$")
_VERSE = re.compile(r"^\s+(\d+) (.*)$")


def available() -> bool:
    return shutil.which("bible") is not None


def parse_bible_output(output: str) -> Iterator[tuple[str, int, int, str]]:
    """``(book, chapter, verse, text)`` from ``bible -l1000`` output."""
    book, chapter = "", 0
    for line in output.splitlines():
        m = _VERSE.match(line)
        if m and book:
            yield book, chapter, int(m.group(1)), m.group(2)
            continue
        m = _CHAPTER.match(line)
        if m:
            book, chapter = m.group(1), int(m.group(2))


def iter_bible() -> Iterator[dict[str, str]]:
    out = subprocess.run(
        ["bible", "-l1000", "gen1:1-rev22:21"], capture_output=True, text=True, check=True
    ).stdout
    for book, chapter, verse, text in parse_bible_output(out):
        yield {
            "id": f"bible:{book}:{chapter}:{verse}",
            "text": clean(text),
            "source": "bible",
            "label": book,
        }
