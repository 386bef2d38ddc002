"""GCIDE (Webster 1913 plus later additions) dictionary entries, labelled by their domain tag.

About a quarter of the entries mark a sense with a subject tag such as ``(Zool.)``, ``(Bot.)`` or
``(Law)``: a natural, human-assigned topic label, which is what makes GCIDE useful as a target
slice (``gcide:Zool.``). An entry's label is its most frequent tag (the first one on a tie) when that tag
covers at least half of its numbered senses, else ``""``. Only tags in ``DOMAINS`` count: parentheses also hold usage notes
(``(Fig.)``), author names and pronunciations, which are not topics.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tunesift.corpora import dictd
from tunesift.corpora.text import clean

NAME = "gcide"
PACKAGES = ("dict-gcide",)

# canonical tag -> other spellings found in the text (GCIDE is inconsistent: "Zool", "Music").
_DOMAIN_FORMS: dict[str, tuple[str, ...]] = {
    "Zool.": ("Zool", "Zoöl.", "Zoöl", "Zoology"),
    "Bot.": ("Bot", "Botany"),
    "Chem.": ("Chem", "Chemistry"),
    "Med.": ("Med", "Medicine"),
    "Anat.": ("Anat", "Anatomy"),
    "Naut.": ("Naut", "Nautical"),
    "Law": ("Law.",),
    "Min.": ("Mineral.", "Mineralogy"),
    "Biol.": ("Biol", "Biology"),
    "Mus.": ("Mus", "Music"),
    "Arch.": ("Architecture",),
    "Mil.": ("Military",),
    "Physiol.": ("Physiology",),
    "Math.": ("Math", "Mathematics"),
    "Physics": ("Physics.",),
    "Astron.": ("Astronomy",),
    "Geol.": ("Geology",),
    "Mach.": ("Machinery",),
    "Geom.": ("Geometry",),
    "Her.": ("Heraldry",),
    "Mining": ("Mining.",),
    "Elec.": ("Electricity", "Elect."),
    "Gram.": ("Grammar",),
    "Eccl.": ("Ecclesiastical",),
    "Mech.": ("Mechanics",),
    "Paleon.": ("Paleontology",),
    "Surg.": ("Surgery",),
    "Print.": ("Printing",),
    "Ethnol.": ("Ethnology",),
    "Fort.": ("Fortification",),
    "Com.": ("Commerce",),
    "Computers": ("Computer", "Computing"),
    "Logic": (),
    "Rhet.": ("Rhetoric",),
    "Theol.": ("Theology",),
    "Metal.": ("Metallurgy",),
    "Opt.": ("Optics",),
    "Far.": ("Farriery",),
    "Crystallog.": ("Crystallography",),
    "Cookery": (),
    "Carp.": ("Carpentry",),
    "Shipbuilding": (),
    "Baseball": (),
    "Photog.": ("Photography",),
    "Metaph.": ("Metaphysics",),
    "Paint.": ("Painting",),
    "Script.": ("Scripture",),
    "Pros.": ("Prosody",),
    "Alg.": ("Algebra",),
    "Engin.": ("Engineering",),
    "Gun.": ("Gunnery",),
    "Founding": (),
    "Geog.": ("Geography",),
    "Agric.": ("Agriculture",),
    "Phon.": ("Phonetics",),
    "Masonry": (),
    "Golf": (),
    "Railroad": ("Railroads", "Railways", "Railway"),
    "Football": (),
    "Astrol.": ("Astrology",),
    "Cricket": (),
    "Hort.": ("Horticulture",),
    "Meteor.": ("Meteorol.", "Meteorology"),
    "Arith.": ("Arithmetic",),
    "Weaving": (),
    "Philos.": ("Philosophy",),
    "Myth.": ("Mythology",),
    "Antiq.": ("Antiquities",),
    "Falconry": (),
    "Finance": (),
    "Pharm.": ("Pharmacy",),
    "Aeronautics": (),
    "Surv.": ("Surveying",),
    "Electronics": (),
    "Firearms": (),
    "Linguistics": (),
    "Philol.": ("Philology",),
    "Biochem.": ("Biochemistry",),
    "Psychol.": ("Psychology",),
    "Genetics": (),
    "Economics": (),
}
DOMAINS: dict[str, str] = {
    form: canon for canon, forms in _DOMAIN_FORMS.items() for form in (canon, *forms)
}

_PAREN = re.compile(r"\(([^()\n]{2,60})\)")
_TAG_SPLIT = re.compile(r"\s*[&,]\s*")
_SENSE = re.compile(r"^ *(\d{1,2})\. ", re.M)
# "[1913 Webster]", "[WordNet 1.5 +PJC]", "[Webster 1913 Suppl.]", "[WordNet sense 2]": sources.
_SOURCE_NOTE = re.compile(
    r"\[\s*(?:\+?\s*(?:1913\s+Webster|Webster\s+1913(?:\s+Suppl\.?)?|WordNet(?:\s+1\.\d|\s+sense"
    r"\s+[\d+]+)?|Century\s+Dict\.?,?(?:\s+1906\.?)?|Johnson'?s?|[A-Z]{2,4}\.?)\s*)+\]"
)
# Pronunciations between backslashes (\Dil"u*ent\); they may wrap to the next line.
_PRONUNCIATION = re.compile(r"\\[^\\]{1,100}\\")
_ACCENT_CODE = r"\[[=~^'`\".,-]?[a-zA-Z]{1,5}\^?\]"
# "(t[=e]*m[^o]r")", "(n[imac]n" [-e]*l[e^]v"[e^]n)": a pronunciation in parentheses, known by
# syllable stars, or by accent codes and stress marks in one word. Never "({Bal[ae]na mysticetus})".
_PAREN_PRONUNCIATION = re.compile(
    r"\((?:[^(){}\s]*(?:" + _ACCENT_CODE + r'|["`])[^(){}\s]*|[^(){}]*[\w\]]\*[\w\[][^(){}]*)\)'
)
_FOOTNOTE = re.compile(r"\[\d\]")  # "same as {abortion[2]}": a sense number
# All four removals in one pass over the text (they never overlap).
_REMOVE = re.compile(
    "|".join(p.pattern for p in (_SOURCE_NOTE, _PRONUNCIATION, _PAREN_PRONUNCIATION, _FOOTNOTE))
)
_CODE = re.compile(r"\[([=~^'`\".,-]?)([a-zA-Z]{1,7})(\^?)\]")
_COMBINING = {
    "=": "\u0304",  # macron
    "-": "\u0304",
    "~": "\u0303",
    "^": "\u0302",
    "'": "\u0301",
    "`": "\u0300",
    '"': "\u0308",
    ".": "\u0307",
    ",": "\u0327",
}
_WORD_CODES = {
    "ae": "æ",
    "AE": "Æ",
    "oe": "œ",
    "OE": "Œ",
    "eth": "ð",
    "thorn": "þ",
    "deg": "°",
    "sect": "§",
    "root": "√",
    "imac": "ī",
    "aum": "ä",
    "add": "a",
    "asl": "a",
    "ng": "ng",
    "th": "th",
    "oo": "oo",
    "yogh": "ȝ",
    "zdot": "ż",
    "dsdot": "ḍ",
    "pounds": "£",
    "prime": "′",
    "bprime": "″",
    "sharp": "♯",
    "flat": "♭",
    "times": "×",
}
_GREEK = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega"
).split()
for _g in _GREEK:
    _name = _g.upper().replace("LAMBDA", "LAMDA")  # Unicode's spelling
    _WORD_CODES[_g] = unicodedata.lookup(f"GREEK SMALL LETTER {_name}")
    _WORD_CODES[_g.title()] = unicodedata.lookup(f"GREEK CAPITAL LETTER {_name}")


def available() -> bool:
    return dictd.available(NAME)


def domain_tags(raw: str) -> list[str]:
    """The canonical domain tags of an entry, in order, e.g. ``["Zool.", "Bot.", "Zool."]``.

    A parenthesis counts only when all its parts are known domains: ``(Bot. & Zool.)`` gives two
    tags, ``(Fig.)`` or ``(Eng. Law)`` none.
    """
    tags: list[str] = []
    for inside in _PAREN.findall(raw):
        parts = _TAG_SPLIT.split(inside.strip())
        if all(p in DOMAINS for p in parts):
            tags.extend(DOMAINS[p] for p in parts)
    return tags


def sense_count(raw: str) -> int:
    """How many numbered senses (``1.``, ``2.`` ... at a line start) the entry has; at least 1."""
    numbers = [int(n) for n in _SENSE.findall(raw)]
    return max(numbers, default=1)


def domain_label(raw: str) -> str:
    """The entry's most frequent domain tag (the first one on a tie), or ``""``.

    ``""`` also when the tag covers fewer than half of the entry's senses: ``ground`` has some
    twenty senses and one of them is ``(Zool.)``, which does not make it a zoology entry.
    """
    tags = domain_tags(raw)
    if not tags:
        return ""
    counts = Counter(tags)
    top = max(counts.values())
    if 2 * top < sense_count(raw):
        return ""
    return next(t for t in tags if counts[t] == top)


def _decode_code(m: re.Match[str]) -> str:
    mark, letters, breve = m.groups()
    if not mark and not breve and letters in _WORD_CODES:
        return _WORD_CODES[letters]
    if len(letters) != 1 and letters not in ("oo", "ae", "oe"):
        return m.group(0)  # not an accent code, e.g. "[Obs]" with no period
    base = {"ae": "æ", "oe": "œ"}.get(letters, letters)
    accent = _COMBINING.get(mark, "") + ("\u0306" if breve else "")  # "^" suffix: breve
    return unicodedata.normalize("NFC", base[0] + accent + base[1:])


def headword(raw: str, fallback: str) -> str:
    """The entry's own headword: the text before the first pronunciation, as in
    ``Diluent \\Dil"u*ent\\, n.``; the index headword when the entry has no pronunciation."""
    first = raw.lstrip().split("\n", 1)[0]
    word = first.split("\\", 1)[0].strip().rstrip(",").strip()
    return word if 0 < len(word) <= 60 and "\\" in first else fallback


def clean_entry(raw: str) -> str:
    """Readable entry text: source notes, pronunciations and link braces dropped, accent codes
    (``[=a]``, ``['e]``, ``[ae]``) turned into the letters they stand for, whitespace collapsed."""
    text = _CODE.sub(_decode_code, _REMOVE.sub(" ", raw))
    return clean(dictd.strip_links(text)).replace(" ,", ",")


def iter_gcide(directory: Path = dictd.DICTD_DIR) -> Iterator[dict[str, str]]:
    """Every GCIDE entry, id ``gcide:<headword>:<n>`` (n counts entries of one headword)."""
    make_id = dictd.IdMaker(NAME)
    for entry in dictd.iter_entries(NAME, directory):
        text = clean_entry(entry.text)
        if text:
            yield {
                "id": make_id(headword(entry.text, entry.headword)),
                "text": text,
                "source": NAME,
                "label": domain_label(entry.text),
            }
