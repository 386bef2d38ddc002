"""Perl FAQ question/answer items (``=head2`` questions of perlfaq1-9), labelled perlfaq1..9."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tunesift.corpora.text import clean

POD_DIR = Path("/usr/share/perl/5.36.0/pod")
_POD_CODE = re.compile(r"[A-Z]<+([^<>]*)>+")


def available() -> bool:
    return (POD_DIR / "perlfaq4.pod").exists()


def split_items(pod: str) -> Iterator[tuple[str, str]]:
    """``(question, answer)`` for every ``=head2`` section."""
    parts = re.split(r"^=head2 (.*)$", pod, flags=re.M)
    for i in range(1, len(parts) - 1, 2):
        answer = re.split(r"^=head1 ", parts[i + 1], flags=re.M)[0]
        answer = "\n".join(line for line in answer.splitlines() if not line.startswith("="))
        yield parts[i].strip(), answer


def iter_perlfaq() -> Iterator[dict[str, str]]:
    for k in range(1, 10):
        path = POD_DIR / f"perlfaq{k}.pod"
        if not path.exists():
            continue
        for n, (question, answer) in enumerate(split_items(path.read_text(errors="replace"))):
            text = clean(_POD_CODE.sub(r"\1", f"{question}\n{answer}"))
            yield {
                "id": f"perlfaq{k}:{n}",
                "text": text,
                "source": "perlfaq",
                "label": f"perlfaq{k}",
            }
