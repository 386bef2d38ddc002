"""The Jargon File 4.4.7 (Debian ``dict-jargon``): hacker slang, one entry per term.

It has no topic labels: usage tags such as ``[Unix]`` mark only a third of the entries and mix
places, communities and frequency, so every record's label is ``""``. The line after the
headword gives pronunciation and part of speech (`` /a´bend/, n.``); the pronunciation is
dropped, the part of speech kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tunesift.corpora import dictd
from tunesift.corpora.text import clean

NAME = "jargon"
PACKAGES = ("dict-jargon",)
_PRONUNCIATION = re.compile(r"/[^/\n]{1,60}/,?\s*")


def available(directory: Path = dictd.DICTD_DIR) -> bool:
    return dictd.available(NAME, directory)


def clean_entry(raw: str) -> str:
    """``"ABEND: n. [ABnormal END] 1. Abnormal termination ..."``."""
    title, _, rest = raw.strip("\n").partition("\n")
    grammar, _, body = rest.partition("\n")
    if grammar.lstrip().startswith("/"):  # not every entry has the pronunciation line
        grammar = _PRONUNCIATION.sub("", grammar).strip().strip(",")
    return clean(f"{title.strip()}: {grammar} {dictd.strip_links(body)}")


def iter_jargon(directory: Path = dictd.DICTD_DIR) -> Iterator[dict[str, str]]:
    """Every Jargon File entry, id ``jargon:<headword>:<n>``, label ``""``."""
    make_id = dictd.IdMaker(NAME)
    for entry in dictd.iter_entries(NAME, directory):
        text = clean_entry(entry.text)
        if text:
            yield {"id": make_id(entry.headword), "text": text, "source": NAME, "label": ""}
