"""The pool and target the model-based methods' cost benchmarks share (Debian fortunes), and
their markdown table's header: ``gradient_methods_cost.py`` and ``loss_methods_cost.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FORTUNE_DIR = Path("/usr/share/games/fortunes")


def fortunes(category: str) -> list[str]:
    """A category's fortunes (the items between ``%`` lines), stripped, empty ones dropped."""
    text = (FORTUNE_DIR / category).read_text(encoding="utf-8", errors="replace")
    return [t.strip() for t in text.split("\n%\n") if t.strip()]


def computers_vs_literature(pool_size: int, target_size: int):
    """The first ``pool_size // 2`` fortunes of ``computers`` and of ``literature``, alternating
    (the pool), whether each pool row is ``computers``, and the next ``target_size``
    ``computers`` fortunes (the target)."""
    comp, lit = fortunes("computers"), fortunes("literature")
    half = pool_size // 2
    pool = [t for pair in zip(comp[:half], lit[:half], strict=True) for t in pair]
    return pool, np.tile([True, False], half), comp[half : half + target_size]


def print_table_header(columns: list[str]) -> None:
    """A markdown table's header line and its separator."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
