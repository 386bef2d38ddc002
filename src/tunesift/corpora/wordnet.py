"""WordNet 3.0 synsets (words and gloss), labelled by lexicographer file (noun.animal, verb.motion).

The lexicographer files are WordNet's own coarse topic classes, assigned by its editors: 45
labels over all 117,659 synsets, several of them (noun.animal, noun.plant, noun.food) natural
target slices. Each ``data.<pos>`` line holds the synset offset, the two-digit lexicographer file
number, the words, pointers, and after ``|`` the gloss; the licence header lines start with
spaces.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from tunesift.corpora.text import clean

NAME = "wordnet"
PACKAGES = ("wordnet-base",)
WORDNET_DIR = Path("/usr/share/wordnet")
PARTS = ("noun", "verb", "adj", "adv")
# lexnames(5WN): the lexicographer file names, indexed by the number in field 2 of data.* lines.
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


class Synset(NamedTuple):
    offset: str
    lexname: str
    words: list[str]
    gloss: str


def available(directory: Path = WORDNET_DIR) -> bool:
    return all((directory / f"data.{p}").is_file() for p in PARTS)


def parse_line(line: str) -> Synset | None:
    """One ``data.<pos>`` line as a Synset; None for the licence header (lines start with spaces).

    Fields: ``offset lex_filenum ss_type w_cnt(hex) [word lex_id]... p_cnt ... | gloss``. Words
    have ``_`` for spaces and adjectives may carry a syntactic marker such as ``(a)`` or ``(ip)``.
    """
    if not line or line[0] == " " or "|" not in line:
        return None
    head, gloss = line.split("|", 1)
    fields = head.split()
    lexnum, w_cnt = int(fields[1]), int(fields[3], 16)
    words = [fields[4 + 2 * i].replace("_", " ").split("(", 1)[0] for i in range(w_cnt)]
    return Synset(fields[0], LEXNAMES[lexnum], words, gloss.strip())


def synset_text(synset: Synset) -> str:
    """``"dog, domestic dog, Canis familiaris: a member of the genus Canis ..."``."""
    return clean(f"{', '.join(synset.words)}: {synset.gloss}")


def iter_wordnet(directory: Path = WORDNET_DIR) -> Iterator[dict[str, str]]:
    """Every synset, id ``wordnet:<pos>:<offset>`` (WordNet's own synset key)."""
    for part in PARTS:
        with open(directory / f"data.{part}", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                synset = parse_line(line)
                if synset is not None:
                    yield {
                        "id": f"wordnet:{part}:{synset.offset}",
                        "text": synset_text(synset),
                        "source": NAME,
                        "label": synset.lexname,
                    }
