"""The King James Bible (Debian ``bible-kjv-text``), one record per verse, labelled by book.

``bible-kjv-text`` installs the text as ``/usr/lib/bible.data``, a file in the package's own
compressed format ("EC02Compressed Data File", with ``bible.data.conc`` its concordance). Rather
than reimplement that codec, the text is read through the package's reader ``bible`` (Debian
``bible-kjv``), which prints all 31,102 verses in 40 ms:

    Genesis 1
    <blank>
      1 In the beginning God created the heaven and the earth.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tunesift.corpora.text import clean
from tunesift.errors import TunesiftError

NAME = "bible"
PACKAGES = ("bible-kjv", "bible-kjv-text")
DATA_FILE = Path("/usr/lib/bible.data")
ALL_VERSES = "gen1:1-rev22:21"
_CHAPTER = re.compile(r"^(\S.*?) (\d+)\s*$")
_VERSE = re.compile(r"^\s+(\d+) (.*)$")


def available() -> bool:
    return shutil.which("bible") is not None and DATA_FILE.is_file()


def parse_bible_output(output: str) -> Iterator[tuple[str, int, int, str]]:
    """``(book, chapter, verse, text)`` from ``bible -l<cols>`` output.

    A verse longer than the line width continues on indented lines without a number; those are
    appended to it (the reader is called with a width that avoids this, but not relied on).
    """
    book, chapter, verse = "", 0, 0
    parts: list[str] = []
    for line in output.splitlines():
        if not line.strip():
            continue
        m = _VERSE.match(line)
        if m and book:
            if parts:
                yield book, chapter, verse, " ".join(parts)
            verse, parts = int(m.group(1)), [m.group(2)]
            continue
        if line[0].isspace() and parts:
            parts.append(line.strip())
            continue
        m = _CHAPTER.match(line)
        if m:
            if parts:
                yield book, chapter, verse, " ".join(parts)
            book, chapter, verse, parts = m.group(1), int(m.group(2)), 0, []
    if parts:
        yield book, chapter, verse, " ".join(parts)


def read_bible() -> str:
    """The whole text as printed by ``bible``."""
    try:
        return subprocess.run(
            ["bible", "-l10000", ALL_VERSES], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise TunesiftError(
            f"could not read the Bible text with `bible` ({exc}); "
            f"apt-get install {' '.join(PACKAGES)}"
        ) from exc


def iter_bible() -> Iterator[dict[str, str]]:
    """Every verse, id ``bible:<Book>:<chapter>:<verse>`` (spaces in the book as ``_``)."""
    for book, chapter, verse, text in parse_bible_output(read_bible()):
        yield {
            "id": f"{NAME}:{book.replace(' ', '_')}:{chapter}:{verse}",
            "text": clean(text),
            "source": NAME,
            "label": book,
        }
