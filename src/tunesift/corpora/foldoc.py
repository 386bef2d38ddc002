"""FOLDOC, the Free On-line Dictionary of Computing (Debian ``dict-foldoc``), labelled by the
category its editors put at the start of an entry: ``<language>``, ``<networking>`` ...

About 70% of the 12,000 entries open with such a category (or open a numbered sense with one);
when an entry lists several (``<networking, standard>``) the first is its label. Angle brackets
elsewhere in the text are e-mail addresses, not categories.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tunesift.corpora import dictd
from tunesift.corpora.text import clean

NAME = "foldoc"
PACKAGES = ("dict-foldoc",)
_CATEGORY = re.compile(r"^\s*(?:\d+\.\s*)?<([^<>@\n]+)>", re.M)
_DATE_STAMP = re.compile(r"^\s*\(\d{4}-\d{2}-\d{2}\)\s*$", re.M)  # last-edit date of an entry


def available(directory: Path = dictd.DICTD_DIR) -> bool:
    return dictd.available(NAME, directory)


def split_entry(raw: str) -> tuple[str, str]:
    """``(title, body)``: the title is the entry's first line, the body the rest."""
    title, _, body = raw.strip("\n").partition("\n")
    return title.strip(), body


def category(body: str) -> str:
    """The entry's first category, e.g. ``"networking"`` for ``<networking, standard>``."""
    m = _CATEGORY.search(body)
    return m.group(1).split(",")[0].strip() if m else ""


def clean_entry(title: str, body: str) -> str:
    return clean(f"{title}: {dictd.strip_links(_DATE_STAMP.sub('', body))}")


def iter_foldoc(directory: Path = dictd.DICTD_DIR) -> Iterator[dict[str, str]]:
    """Every FOLDOC entry, id ``foldoc:<headword>:<n>``."""
    make_id = dictd.IdMaker(NAME)
    for entry in dictd.iter_entries(NAME, directory):
        title, body = split_entry(entry.text)
        text = clean_entry(title, body)
        if body.strip():
            yield {
                "id": make_id(entry.headword),
                "text": text,
                "source": NAME,
                "label": category(body),
            }
