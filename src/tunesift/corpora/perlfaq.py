"""The Perl FAQ (Debian ``perl-doc``): one record per question with its answer, labelled by the
FAQ part it comes from (perlfaq1 general ... perlfaq4 data manipulation ... perlfaq9 networking).

Each ``perlfaqN.pod`` holds its questions as ``=head2`` headings grouped under ``=head1``
sections; the text is the question followed by the answer, with POD formatting codes
(``C<...>``, ``L<...|...>``, ``E<gt>``) resolved to plain text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tunesift.corpora.text import clean

NAME = "perlfaq"
PACKAGES = ("perl-doc",)
POD_ROOT = Path("/usr/share/perl")
_HEAD2 = re.compile(r"^=head2[ \t]+(.*)$", re.M)
_HEAD1 = re.compile(r"^=head1\b", re.M)
_COMMAND = re.compile(r"^=(\w+)[ \t]*(.*)$", re.M)
_TEXT_COMMANDS = frozenset({"item", "head3", "head4"})  # commands whose argument is prose
_DOUBLE_CODE = re.compile(r"([A-Z])<<+\s+(.*?)\s+>>+", re.S)  # C<< $a <=> $b >>
_CODE = re.compile(r"([A-Z])<([^<>]*)>")
# Angle brackets that are text, not POD, while codes are resolved: private-use stand-ins.
_LT, _GT = "\ue000", "\ue001"
_ENTITIES = {"lt": _LT, "gt": _GT, "verbar": "|", "sol": "/", "quot": '"', "amp": "&"}


def pod_dir() -> Path | None:
    """``/usr/share/perl/<version>/pod`` of the installed perl-doc (the version varies)."""
    if not POD_ROOT.is_dir():
        return None
    dirs = sorted(p for p in POD_ROOT.glob("*/pod") if (p / "perlfaq4.pod").is_file())
    return dirs[-1] if dirs else None


def available() -> bool:
    return pod_dir() is not None


def _resolve_code(m: re.Match[str]) -> str:
    kind, inside = m.group(1), m.group(2)
    if kind == "E":
        return _ENTITIES.get(inside, chr(int(inside)) if inside.isdigit() else inside)
    if kind == "L":  # L<text|target>, L<name/"section">, L<url>
        inside = inside.split("|", 1)[0]
        return inside.replace('/"', " ").replace('"', "")
    if kind in ("X", "Z"):  # index entries, zero-width
        return ""
    return inside


def _protect(text: str) -> str:
    return text.replace("<", _LT).replace(">", _GT)


def pod_to_text(pod: str) -> str:
    """POD formatting codes resolved, nested ones too; command lines other than =item dropped.

    Innermost codes go first (``C<I<x>>`` takes two passes); what a code resolves to may hold
    angle brackets (``C<< $a <=> $b >>``, ``E<gt>``), which must not close an outer code, so they
    stand in as private-use characters until the end.
    """
    text = _COMMAND.sub(lambda m: m.group(2) if m.group(1) in _TEXT_COMMANDS else "", pod)
    text = _DOUBLE_CODE.sub(lambda m: _protect(_resolve_code(m)), text)
    for _ in range(5):
        text, n = _CODE.subn(lambda m: _protect(_resolve_code(m)), text)
        if not n:
            break
    return text.replace(_LT, "<").replace(_GT, ">")


def split_items(pod: str) -> Iterator[tuple[str, str]]:
    """``(question, answer POD)`` for every ``=head2``; an answer ends at the next heading."""
    heads = list(_HEAD2.finditer(pod))
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(pod)
        answer = pod[m.end() : end]
        h1 = _HEAD1.search(answer)
        yield m.group(1).strip(), answer[: h1.start()] if h1 else answer


def iter_perlfaq() -> Iterator[dict[str, str]]:
    """Every question, id ``perlfaq:perlfaqN:<n>`` (n: position in the file, from 0)."""
    directory = pod_dir()
    if directory is None:
        return
    for k in range(1, 10):
        path = directory / f"perlfaq{k}.pod"
        if not path.is_file():
            continue
        pod = path.read_text(encoding="utf-8", errors="replace")
        for n, (question, answer) in enumerate(split_items(pod)):
            yield {
                "id": f"{NAME}:perlfaq{k}:{n}",
                "text": clean(pod_to_text(f"{question}\n\n{answer}")),
                "source": NAME,
                "label": f"perlfaq{k}",
            }
