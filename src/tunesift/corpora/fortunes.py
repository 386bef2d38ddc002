"""Fortune cookies (Debian ``fortunes``, ``fortunes-min``, ``fortunes-bofh-excuses``,
``fortune-anarchism``), labelled by category: the file they come from (science, law, linux ...).

Each category is a plain text file in ``/usr/share/games/fortunes`` whose items are separated by
lines holding only ``%``. Next to it lie ``<category>.dat`` (strfile's binary offset table) and
``<category>.u8`` (a symlink to the same file, for UTF-8 locales): both are skipped, or every
fortune would be read twice. ``ascii-art`` is skipped too: its pictures do not survive whitespace
collapsing and are not text.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tunesift.corpora.text import clean, fix_mojibake, unoverstrike

NAME = "fortunes"
PACKAGES = ("fortunes", "fortunes-min", "fortunes-bofh-excuses", "fortune-anarchism")
FORTUNE_DIR = Path("/usr/share/games/fortunes")
SKIP_CATEGORIES = frozenset({"ascii-art"})


def category_files(directory: Path = FORTUNE_DIR) -> list[Path]:
    """The category files, sorted by name: no ``.dat`` indexes, no ``.u8`` symlinks."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file()
        and not p.is_symlink()
        and p.suffix not in (".dat", ".u8")
        and p.name not in SKIP_CATEGORIES
    )


def available(directory: Path = FORTUNE_DIR) -> bool:
    return bool(category_files(directory))


def split_fortunes(content: str) -> list[str]:
    """The raw items of a fortune file, in order, empty ones included (so numbering is stable)."""
    items: list[str] = []
    current: list[str] = []
    for line in content.splitlines():
        if line.rstrip() == "%":
            items.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if any(line.strip() for line in current):
        items.append("\n".join(current))
    return items


def clean_fortune(raw: str) -> str:
    """Overstruck underlining resolved, double-encoded UTF-8 repaired, whitespace collapsed."""
    return clean(fix_mojibake("\n".join(unoverstrike(line) for line in raw.splitlines())))


def iter_fortunes(directory: Path = FORTUNE_DIR) -> Iterator[dict[str, str]]:
    """Every fortune, id ``fortunes:<category>:<n>`` (n: position in the file, from 0)."""
    for path in category_files(directory):
        content = path.read_bytes().decode("utf-8", errors="replace")
        for n, raw in enumerate(split_fortunes(content)):
            text = clean_fortune(raw)
            if text:
                yield {
                    "id": f"{NAME}:{path.name}:{n}",
                    "text": text,
                    "source": NAME,
                    "label": path.name,
                }
