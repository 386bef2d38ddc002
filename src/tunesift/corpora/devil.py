"""Ambrose Bierce's *The Devil's Dictionary* (1911; Debian ``dict-devil``): about a thousand
satirical definitions. No topic labels (the part of speech is the only structure), so every
record's label is ``""``. Entries already begin with their headword (``ABNORMAL, adj.``);
``_word_`` emphasis is unmarked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tunesift.corpora import dictd
from tunesift.corpora.text import clean

NAME = "devil"
PACKAGES = ("dict-devil",)
_EMPHASIS = re.compile(r"(?<![\w_])_([^_\n]+)_(?![\w_])")


def available(directory: Path = dictd.DICTD_DIR) -> bool:
    return dictd.available(NAME, directory)


def clean_entry(raw: str) -> str:
    return clean(_EMPHASIS.sub(r"\1", raw))


def iter_devil(directory: Path = dictd.DICTD_DIR) -> Iterator[dict[str, str]]:
    """Every entry, id ``devil:<headword>:<n>``, label ``""``."""
    make_id = dictd.IdMaker(NAME)
    for entry in dictd.iter_entries(NAME, directory):
        text = clean_entry(entry.text)
        if text:
            yield {"id": make_id(entry.headword), "text": text, "source": NAME, "label": ""}
