"""GCIDE (Webster 1913 and later): dictionary entries, labelled by their domain tag.

About a fifth of the entries carry a domain tag in the text, such as ``(Zool.)`` or ``(Bot.)``.
An entry's label is its tag when all the tags it carries agree, else ``""`` (untagged or mixed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from tunesift.corpora import dictd
from tunesift.corpora.text import clean

DOMAINS = (
    "Zool",
    "Bot",
    "Chem",
    "Med",
    "Law",
    "Naut",
    "Mus",
    "Arch",
    "Anat",
    "Min",
    "Geol",
    "Astron",
    "Math",
    "Physiol",
    "Her",
    "Mil",
    "Eccl",
    "Elec",
    "Mech",
    "Biol",
    "Paleon",
    "Pharm",
    "Gram",
    "Print",
    "Theol",
    "Agric",
    "Surg",
    "Myth",
    "Antiq",
    "Com",
    "Carp",
    "Physics",
    "Photog",
    "Logic",
    "Rhet",
    "Geom",
    "Zoöl",
    "Falconry",
    "Fort",
    "Cookery",
    "Mining",
    "Script",
    "Philos",
    "Pros",
)
_TAG = re.compile(r"\((" + "|".join(DOMAINS) + r")\.?\)")
_MARKUP = re.compile(
    r"\[(?:1913 Webster|WordNet 1\.5|PJC|Century Dict\.|Webster 1913 Suppl\.)\]|[{}]"
)
_PRONUNCIATION = re.compile(r"\\[^\\\n]{1,80}\\")


def available() -> bool:
    return dictd.available("gcide")


def domain_label(raw: str) -> str:
    """``"Zool."`` for an entry whose tags are all ``(Zool.)``; ``""`` when none or mixed."""
    tags = {t.replace("Zoöl", "Zool") for t in _TAG.findall(raw)}
    if len(tags) != 1:
        return ""
    tag = tags.pop()
    return tag if tag == "Law" else tag + "."


def clean_entry(raw: str) -> str:
    return clean(_PRONUNCIATION.sub("", _MARKUP.sub("", raw)))


def iter_gcide() -> Iterator[dict[str, str]]:
    for n, (_word, raw) in enumerate(dictd.iter_entries("gcide")):
        text = clean_entry(raw)
        if text:
            yield {"id": f"gcide:{n}", "text": text, "source": "gcide", "label": domain_label(raw)}
