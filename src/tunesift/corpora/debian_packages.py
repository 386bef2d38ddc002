"""Debian package descriptions (synopsis + long description), labelled by archive section
(libs, python, games, science, ...): about 60,000 short technical texts with a topic label.

They come from apt's own lists, no extra package: ``*_Packages`` gives each package's Section and
Description-md5, and ``*_Translation-en`` (fetched by ``apt-get update -o
Acquire::Languages=en``) the long descriptions, joined on Description-md5. apt stores the lists
compressed (lz4 on bookworm); ``apt-helper cat-file`` decompresses whatever apt used.

Several binary packages often share one description (same md5): it is yielded once, under the
first package. A package listed twice (bookworm and bookworm-security) keeps the description of
the first list in name order, which is the security or updates one.
"""

from __future__ import annotations

import gzip
import logging
import lzma
import shutil
import subprocess
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from tunesift.corpora.text import clean
from tunesift.errors import TunesiftError

NAME = "debian"
PACKAGES: tuple[str, ...] = ()  # apt's lists; `apt-get update -o Acquire::Languages=en`
LISTS_DIR = Path("/var/lib/apt/lists")
APT_HELPER = Path("/usr/lib/apt/apt-helper")
log = logging.getLogger(__name__)


def list_files(kind: str, directory: Path = LISTS_DIR) -> list[Path]:
    """apt list files of one kind (``Packages`` or ``Translation-en``), sorted by name."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and (p.name.endswith(f"_{kind}") or f"_{kind}." in p.name)
    )


def available(directory: Path = LISTS_DIR) -> bool:
    return bool(list_files("Packages", directory)) and bool(list_files("Translation-en", directory))


def list_dates(directory: Path = LISTS_DIR) -> dict[str, str]:
    """``{release file: its Date}``: which archive snapshot the descriptions came from."""
    dates = {}
    for path in list_files("InRelease", directory) + list_files("Release", directory):
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in islice(fh, 40):  # Date is in the header, after the PGP armour
                if line.startswith("Date: "):
                    dates[path.name] = line[len("Date: ") :].strip()
                    break
    return dates


def read_list(path: Path) -> str:
    """A list file's text, decompressed by apt-helper (any codec apt uses), else by suffix."""
    if path.suffix == ".gz":
        data = gzip.decompress(path.read_bytes())
    elif path.suffix == ".xz":
        data = lzma.decompress(path.read_bytes())
    elif path.suffix in (".lz4", ".zst", ".bz2"):
        tool = [str(APT_HELPER), "cat-file"] if APT_HELPER.exists() else None
        if tool is None and path.suffix == ".lz4" and shutil.which("lz4cat"):
            tool = ["lz4cat"]
        if tool is None:
            raise TunesiftError(f"cannot decompress {path}: apt-helper (package apt) not found")
        data = subprocess.run([*tool, str(path)], capture_output=True, check=True).stdout
    else:
        data = path.read_bytes()
    return data.decode("utf-8", errors="replace")


def _field(stanza: str, name: str) -> str:
    """A one-line field's value, or ``""``; str.find is several times faster than a regex here."""
    key = f"{name}: "
    if stanza.startswith(key):
        begin = len(key)
    else:
        at = stanza.find(f"\n{key}")
        if at < 0:
            return ""
        begin = at + 1 + len(key)
    end = stanza.find("\n", begin)
    return stanza[begin : end if end >= 0 else None].strip()


def parse_packages(text: str) -> Iterator[tuple[str, str, str]]:
    """``(package, section, description md5)`` of every stanza of a Packages file."""
    for stanza in text.split("\n\n"):
        package, md5 = _field(stanza, "Package"), _field(stanza, "Description-md5")
        if package and md5:
            yield package, _field(stanza, "Section").rsplit("/", 1)[-1], md5


def parse_translations(text: str) -> Iterator[tuple[str, str]]:
    """``(description md5, Description-en value)`` of every stanza of a Translation file."""
    for stanza in text.split("\n\n"):
        md5 = _field(stanza, "Description-md5")
        start = stanza.find("Description-en: ")
        if md5 and start >= 0:
            yield md5, stanza[start + len("Description-en: ") :]


def description_text(package: str, description: str) -> str:
    """``"<package>: <synopsis>. <long description>"``, with Debian's `` .`` paragraph
    separators dropped and the line wrapping collapsed."""
    synopsis, _, body = description.partition("\n")
    synopsis = synopsis.strip()
    lines = [line[1:] for line in body.splitlines() if line.strip() != "."]
    long = " ".join(lines)
    if long.strip() and synopsis and synopsis[-1] not in ".!?:":
        synopsis += "."
    return clean(f"{package}: {synopsis} {long}")


def iter_debian(directory: Path = LISTS_DIR) -> Iterator[dict[str, str]]:
    """Every distinct English package description, id ``debian:<package>``, label its section."""
    by_package: dict[str, tuple[str, str]] = {}
    for path in list_files("Packages", directory):
        for package, section, md5 in parse_packages(read_list(path)):
            by_package.setdefault(package, (section, md5))
    owner: dict[str, tuple[str, str]] = {}  # md5 -> (first package, its section)
    for package, (section, md5) in by_package.items():
        owner.setdefault(md5, (package, section))
    done: set[str] = set()
    for path in list_files("Translation-en", directory):
        for md5, description in parse_translations(read_list(path)):
            if md5 in done or md5 not in owner:
                continue
            done.add(md5)
            package, section = owner[md5]
            yield {
                "id": f"{NAME}:{package}",
                "text": description_text(package, description),
                "source": NAME,
                "label": section,
            }
    if len(done) < len(owner):
        log.debug("debian: %d descriptions without an English text", len(owner) - len(done))
