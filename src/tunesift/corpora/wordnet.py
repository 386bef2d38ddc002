"""WordNet synset glosses, labelled by lexicographer file (noun.animal, verb.motion, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tunesift.corpora.text import clean

WORDNET_DIR = Path("/usr/share/wordnet")
PARTS = ("noun", "verb", "adj", "adv")
# WordNet's standard lexicographer files, by number (the lexnames file of the distribution).
LEXNAMES = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)


def available() -> bool:
    return all((WORDNET_DIR / f"data.{p}").exists() for p in PARTS)


def parse_line(line: str) -> tuple[str, str, str] | None:
    """``(offset, lexname, "word, word: gloss")`` of a data.* line; None for the licence header."""
    if line.startswith(" ") or "|" not in line:
        return None
    head, gloss = line.split("|", 1)
    fields = head.split()
    offset, lexnum, w_cnt = fields[0], int(fields[1]), int(fields[3], 16)
    words = [fields[4 + 2 * i].replace("_", " ") for i in range(w_cnt)]
    words = [w.split("(")[0] for w in words]  # adjective markers like "(a)"
    return offset, LEXNAMES[lexnum], clean(f"{', '.join(words)}: {gloss}")


def iter_wordnet() -> Iterator[dict[str, str]]:
    for part in PARTS:
        with open(WORDNET_DIR / f"data.{part}", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parsed = parse_line(line)
                if parsed is not None:
                    offset, lexname, text = parsed
                    yield {
                        "id": f"wordnet:{part}:{offset}",
                        "text": text,
                        "source": "wordnet",
                        "label": lexname,
                    }
