"""Text clean-up shared by the corpus sources."""

from __future__ import annotations

import re

_SPACE = re.compile(r"\s+")
MAX_CHARS = 4000


def clean(text: str, max_chars: int = MAX_CHARS) -> str:
    """Collapse whitespace and cap the length (a few dictionary entries run to pages)."""
    text = _SPACE.sub(" ", text).strip()
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0]
    return text
