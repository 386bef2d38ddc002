"""Text clean-up shared by the corpus sources.

Every source is laid out for an 80-column terminal (hard line wraps, indentation, tabs); none of
that is content, so texts are collapsed to single spaces. A few dictionary entries run to many
pages, so texts are capped at ``MAX_CHARS`` (cut at a word boundary): one outlier should not
dominate a batch of embeddings or a training step.
"""

from __future__ import annotations

import re

MAX_CHARS = 4000

# C0/C1 control characters other than tab and newline: terminal bells, form feeds, stray bytes.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# The lead byte of a UTF-8 sequence decoded as Latin-1/cp1252 and followed by a continuation byte.
_MOJIBAKE = re.compile(r"[\u00c2-\u00f4][\u0080-\u00bf\u2018-\u203a\u20ac\u0152-\u0178]")


def collapse(text: str, max_chars: int = MAX_CHARS) -> str:
    """Collapse all whitespace to single spaces, then cap the length at a word boundary."""
    text = " ".join(text.split())  # str.split() is several times faster than a regex here
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0]
    return text


def unoverstrike(line: str) -> str:
    """Resolve terminal overstriking (``_\\bx`` underline, ``x\\bx`` bold) to the visible text.

    Old fortunes underline words as ``____\\b\\b\\b\\bword``: replay the line like a terminal,
    where a backspace moves back one column and an underscore never hides the letter under it.
    """
    if "\b" not in line:
        return line
    cells: list[str] = []
    col = 0
    for ch in line:
        if ch == "\b":
            col = max(col - 1, 0)
            continue
        if col < len(cells):
            if ch != "_":
                cells[col] = ch
        else:
            cells.append(ch)
        col += 1
    return "".join(cells)


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 that was decoded as Latin-1 and encoded again (``donâ\\x80\\x99t`` → ``don't``).

    Applied at most twice (some fortunes were double-encoded); text that does not round-trip is
    returned unchanged, so correct Latin-1 letters such as ``é`` are never touched.
    """
    for _ in range(2):
        if not _MOJIBAKE.search(text):
            break
        for codec in ("latin-1", "cp1252"):
            try:
                text = text.encode(codec).decode("utf-8")
                break
            except (UnicodeEncodeError, UnicodeDecodeError):
                continue
        else:
            break
    return text


def clean(text: str, max_chars: int = MAX_CHARS) -> str:
    """The generic clean-up: control characters out, whitespace collapsed, length capped."""
    return collapse(_CONTROL.sub(" ", text), max_chars)
