"""Fortune cookies, labelled by category file; items are separated by lines holding only ``%``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tunesift.corpora.text import clean

FORTUNE_DIR = Path("/usr/share/games/fortunes")


def available() -> bool:
    return FORTUNE_DIR.is_dir() and any(category_files())


def category_files() -> list[Path]:
    """The category files: not the ``.dat`` indexes, not the ``.u8`` symlinks to the same files."""
    if not FORTUNE_DIR.is_dir():
        return []
    return sorted(
        p
        for p in FORTUNE_DIR.iterdir()
        if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8")
    )


def split_fortunes(content: str) -> list[str]:
    items, current = [], []
    for line in content.splitlines():
        if line.strip() == "%":
            items.append("\n".join(current))
            current = []
        else:
            current.append(line)
    items.append("\n".join(current))
    return [clean(i) for i in items if i.strip()]


def iter_fortunes() -> Iterator[dict[str, str]]:
    for path in category_files():
        content = path.read_bytes().decode("utf-8", errors="replace")
        for n, text in enumerate(split_fortunes(content)):
            yield {
                "id": f"fortunes:{path.name}:{n}",
                "text": text,
                "source": "fortunes",
                "label": path.name,
            }
