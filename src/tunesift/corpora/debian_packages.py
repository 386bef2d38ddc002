"""Debian package long descriptions, labelled by section (libs, python, games, science, ...).

Read from apt's lists: ``*_Packages`` gives Package, Section and Description-md5;
``*_Translation-en`` gives the long descriptions, joined on Description-md5. Both are usually lz4
compressed; ``apt-helper cat-file`` decompresses whatever apt used. The translations are fetched
by ``apt-get update -o Acquire::Languages=en`` (scripts/setup.sh runs it).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

from tunesift.corpora.text import clean

LISTS = Path("/var/lib/apt/lists")
APT_HELPER = Path("/usr/lib/apt/apt-helper")


def _lists(kind: str) -> list[Path]:
    if not LISTS.is_dir():
        return []
    # e.g. deb.debian.org_debian_dists_bookworm_main_i18n_Translation-en.lz4
    return sorted(
        p
        for p in LISTS.iterdir()
        if p.name.rsplit(".", 1)[0].endswith(kind) or p.name.endswith(kind)
    )


def available() -> bool:
    return APT_HELPER.exists() and bool(_lists("_Packages")) and bool(_lists("_Translation-en"))


def _stanzas(path: Path) -> Iterator[dict[str, str]]:
    text = subprocess.run(
        [str(APT_HELPER), "cat-file", str(path)], capture_output=True, check=True
    ).stdout
    for block in text.decode("utf-8", errors="replace").split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.startswith(" ") and key:
                fields[key] += "\n" + line[1:]
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if fields:
            yield fields


def parse_description(desc: str) -> str:
    """Synopsis + long description, with Debian's ``.`` paragraph separators dropped."""
    lines = [("" if line.strip() == "." else line) for line in desc.splitlines()]
    return clean("\n".join(lines))


def iter_debian() -> Iterator[dict[str, str]]:
    section: dict[str, tuple[str, str]] = {}
    for path in _lists("_Packages"):
        for st in _stanzas(path):
            if "Description-md5" in st and "Section" in st:
                section.setdefault(
                    st["Description-md5"], (st["Package"], st["Section"].split("/")[-1])
                )
    seen: set[str] = set()
    for path in _lists("_Translation-en"):
        for st in _stanzas(path):
            md5 = st.get("Description-md5")
            if md5 is None or md5 in seen or md5 not in section or "Description-en" not in st:
                continue
            seen.add(md5)
            package, sec = section[md5]
            yield {
                "id": f"debian:{package}",
                "text": parse_description(st["Description-en"]),
                "source": "debian",
                "label": sec,
            }
