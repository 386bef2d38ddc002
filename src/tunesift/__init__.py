"""tunesift: pick the training data a pretrained language model should be tuned on.

>>> import tunesift
>>> sel = tunesift.select("pool.jsonl", "target.jsonl", budget=1000)   # GOT-D, MiniLM features
>>> sel.write("selected.jsonl")
"""

from __future__ import annotations

from typing import Any

from tunesift._version import __version__

__all__ = ["Selection", "__version__", "compare", "select"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `tunesift --version` and light imports do not load torch and transformers.
    if name == "select":
        from tunesift.api import select

        return select
    if name == "compare":
        from tunesift.comparison import compare

        return compare
    if name == "Selection":
        from tunesift.selection import Selection

        return Selection
    raise AttributeError(f"module 'tunesift' has no attribute {name!r}")
