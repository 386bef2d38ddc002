"""Build a multi-source pool and a held-out target slice from the Debian corpora.

The pool mixes every source, each record tagged with its ``source`` and natural ``label``. The
target slice (``source:label``, e.g. ``gcide:Zool.``) is taken out of the corpora before anything
else, so no target text can ever be selected from the pool: a sample of it is the target, the
rest is ``heldout.jsonl`` for evaluating what a selection learnt. Same arguments and seed give
byte-identical files, on the same package versions (``build.json`` records them).

Order of operations: read the target source and move its slice aside; then, source by source,
drop texts shorter than ``min_chars``, drop records whose text is in the slice or already in the
pool (exact duplicates: the first source and record win); shuffle with a seed derived from ``seed``
and the source name (so adding a source does not change another's sample); cap at
``max_per_source``. The pool is then shuffled as a whole, so any prefix of it is a fair mix.
"""

from __future__ import annotations

import hashlib
import logging
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tunesift.corpora import (
    bible,
    debian_packages,
    devil,
    foldoc,
    fortunes,
    gcide,
    jargon,
    perlfaq,
    wordnet,
)
from tunesift.errors import TunesiftError
from tunesift.outputs import write_json_atomic, write_jsonl_atomic

log = logging.getLogger(__name__)
Record = dict[str, str]
FIELDS = ("id", "text", "source", "label")


@dataclass(frozen=True)
class Source:
    """A corpus: how to read it, whether it is installed, and what to install when not."""

    name: str
    read: Callable[[], Iterator[Record]]
    available: Callable[[], bool]
    packages: tuple[str, ...]
    install: str  # the command that makes it available

    def records(self) -> Iterator[Record]:
        """The source's records, parsed from its files; inside :func:`sources_read_once`, parsed
        once and replayed from memory (each record a fresh copy) on later reads."""
        if _read_once is None:
            yield from self.read()
            return
        if self not in _read_once:  # keyed by the Source itself: its name and its reader
            _read_once[self] = list(self.read())
        for rec in _read_once[self]:
            yield dict(rec)

    def require(self) -> None:
        if not self.available():
            raise TunesiftError(
                f"corpus source {self.name!r} is not installed: {self.install} "
                "(scripts/setup.sh installs every source)"
            )


_read_once: dict[Source, list[Record]] | None = None


@contextmanager
def sources_read_once() -> Iterator[None]:
    """Parse each source at most once inside this block: a process that reads a source several
    times (``bench`` reads a target's source for its task and again for the pool; a test session
    builds many corpora) replays it from memory. All nine sources hold about 420 MB as Python
    objects, released when the outermost block ends. Reentrant."""
    global _read_once
    if _read_once is not None:
        yield
        return
    _read_once = {}
    try:
        yield
    finally:
        _read_once = None


def _apt(*packages: str) -> str:
    return "apt-get install " + " ".join(packages)


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "fortunes",
            fortunes.iter_fortunes,
            fortunes.available,
            fortunes.PACKAGES,
            _apt(*fortunes.PACKAGES),
        ),
        Source("gcide", gcide.iter_gcide, gcide.available, gcide.PACKAGES, _apt(*gcide.PACKAGES)),
        Source(
            "wordnet",
            wordnet.iter_wordnet,
            wordnet.available,
            wordnet.PACKAGES,
            _apt(*wordnet.PACKAGES),
        ),
        Source(
            "foldoc", foldoc.iter_foldoc, foldoc.available, foldoc.PACKAGES, _apt(*foldoc.PACKAGES)
        ),
        Source(
            "jargon", jargon.iter_jargon, jargon.available, jargon.PACKAGES, _apt(*jargon.PACKAGES)
        ),
        Source("devil", devil.iter_devil, devil.available, devil.PACKAGES, _apt(*devil.PACKAGES)),
        Source("bible", bible.iter_bible, bible.available, bible.PACKAGES, _apt(*bible.PACKAGES)),
        Source(
            "perlfaq",
            perlfaq.iter_perlfaq,
            perlfaq.available,
            perlfaq.PACKAGES,
            _apt(*perlfaq.PACKAGES),
        ),
        Source(
            "debian",
            debian_packages.iter_debian,
            debian_packages.available,
            ("apt",),
            "apt-get update -o Acquire::Languages=en (the English package descriptions)",
        ),
    )
}
DEFAULT_SOURCES: tuple[str, ...] = tuple(SOURCES)


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise TunesiftError(f"unknown corpus source {name!r}; choose from {', '.join(SOURCES)}")
    return SOURCES[name]


def sources_available(names: Iterable[str] = DEFAULT_SOURCES) -> bool:
    """True when every named source is installed (for tests and benchmarks that need them)."""
    return all(get_source(n).available() for n in names)


def parse_target(spec: str) -> tuple[str, str]:
    """``"gcide:Zool."`` -> ``("gcide", "Zool.")``; the label may itself hold colons."""
    source, sep, label = spec.partition(":")
    if not sep or not source or not label:
        raise TunesiftError(
            f"target must be SOURCE:LABEL (e.g. gcide:Zool.), got {spec!r}", param="target"
        )
    get_source(source)
    return source, label


def label_counts(name: str, min_chars: int = 0) -> Counter[str]:
    """How many records of a source carry each label (texts of at least ``min_chars``)."""
    src = get_source(name)
    src.require()
    return Counter(r["label"] for r in src.records() if len(r["text"]) >= min_chars)


@dataclass
class CorpusBuild:
    """What a build wrote, and its counts (all of them are also in ``build.json``)."""

    pool_path: Path
    target_path: Path
    heldout_path: Path
    counts: dict[str, int]  # pool records by source
    target_count: int
    heldout_count: int
    duplicates_dropped: int
    info_path: Path
    label_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # pool, by source
    params: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def pool_count(self) -> int:
        return sum(self.counts.values())


def _write_jsonl(path: Path, rows: Iterable[Record]) -> None:
    write_jsonl_atomic(path, ({k: r[k] for k in FIELDS} for r in rows))


def _write_json(path: Path, obj: object) -> None:
    write_json_atomic(path, obj, indent=1, ensure_ascii=False)


def package_versions(packages: Iterable[str]) -> dict[str, str]:
    """``{package: version}`` from ``dpkg-query -W``; packages not installed are left out."""
    names = sorted(set(packages))
    if not names:
        return {}
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package}\t${Version}\n", *names],
            capture_output=True,
            text=True,
        ).stdout
    except OSError:
        return {}
    pairs = (line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    return {p: v for p, v in pairs if v}


def _by_count(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def _key(text: str) -> bytes:
    """A text's 128-bit digest, for duplicate checks: a set of digests takes a fraction of the
    memory of a set of every text read (collisions: about 1e-29 for 400k texts)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _read(src: Source, min_chars: int, stats: Counter[str]) -> Iterator[Record]:
    """A source's records of at least ``min_chars``, counting what was read and dropped."""
    t = time.perf_counter()
    for rec in src.records():
        stats["records"] += 1
        if len(rec["text"]) < min_chars:
            stats["too_short"] += 1
            continue
        yield rec
    log.info("%s: %d records read in %.1fs", src.name, stats["records"], time.perf_counter() - t)


def _rng(seed: int, name: str) -> random.Random:
    # A str seed goes through SHA-512: stable across runs and Python versions, unlike hash().
    return random.Random(f"{seed}/{name}")


def build_corpora(
    out_dir: Path,
    *,
    sources: Sequence[str] = DEFAULT_SOURCES,
    max_per_source: int | None = 2000,
    target: str = "gcide:Zool.",
    target_size: int = 500,
    seed: int = 0,
    min_chars: int = 20,
) -> CorpusBuild:
    """Write ``pool.jsonl``, ``target.jsonl``, ``heldout.jsonl`` and ``build.json`` to ``out_dir``.

    ``max_per_source=None`` keeps every record. The target source is read for the slice even when
    it is not among ``sources`` (then none of its other records enter the pool).
    """
    started = time.perf_counter()
    names = list(dict.fromkeys(s.strip() for s in sources if s.strip()))
    if not names:
        raise TunesiftError("no corpus sources given")
    if max_per_source is not None and max_per_source < 1:
        raise TunesiftError(f"max_per_source must be at least 1 (or None), got {max_per_source}")
    if target_size < 1:
        raise TunesiftError(f"target_size must be at least 1, got {target_size}")
    target_source, target_label = parse_target(target)
    srcs = [get_source(n) for n in dict.fromkeys([*names, target_source])]
    missing = [s for s in srcs if not s.available()]
    if missing:
        raise TunesiftError(
            "corpus sources not installed: "
            + "; ".join(f"{s.name} ({s.install})" for s in missing)
            + " (scripts/setup.sh installs them all)"
        )

    # 1. The target source first: its slice goes aside before any pool decision.
    stats: dict[str, Counter[str]] = {src.name: Counter() for src in srcs}
    slice_rows: list[Record] = []
    target_rest: list[Record] = []
    target_labels: Counter[str] = Counter()
    for rec in _read(get_source(target_source), min_chars, stats[target_source]):
        target_labels[rec["label"]] += 1
        if rec["label"] == target_label:
            slice_rows.append(rec)
        elif target_source in names:
            target_rest.append(rec)
    stats[target_source]["target_slice"] = len(slice_rows)
    if not slice_rows:
        top = ", ".join(f"{lab} ({n})" for lab, n in target_labels.most_common(8) if lab)
        raise TunesiftError(
            f"the target slice {target!r} is empty; {target_source} labels include: {top}"
        )

    # 2. The slice, without duplicate texts: a target sample and the held-out rest.
    slice_keys: set[bytes] = set()
    unique_slice = []
    for rec in slice_rows:
        key = _key(rec["text"])
        if key not in slice_keys:
            slice_keys.add(key)
            unique_slice.append(rec)
    slice_duplicates = len(slice_rows) - len(unique_slice)
    _rng(seed, "target").shuffle(unique_slice)
    target_rows, heldout_rows = unique_slice[:target_size], unique_slice[target_size:]
    if not heldout_rows:
        log.warning(
            "the target slice %s has %d records, not more than target_size %d: nothing is held out",
            target,
            len(unique_slice),
            target_size,
        )

    # 3. The pool, one source at a time: no slice text, no duplicate, shuffled and capped.
    seen: set[bytes] = set()
    pool: list[Record] = []
    counts: dict[str, int] = {}
    labels: dict[str, dict[str, int]] = {}
    for name in names:
        st = stats[name]
        rows = target_rest if name == target_source else _read(get_source(name), min_chars, st)
        kept = []
        for rec in rows:
            key = _key(rec["text"])
            if key in slice_keys:
                st["same_text_as_target"] += 1
            elif key in seen:
                st["duplicates"] += 1
            else:
                seen.add(key)
                kept.append(rec)
        st["eligible"] = len(kept)
        _rng(seed, name).shuffle(kept)
        if max_per_source is not None:
            kept = kept[:max_per_source]
        st["pool"] = counts[name] = len(kept)
        labels[name] = _by_count(Counter(r["label"] for r in kept))
        pool.extend(kept)
    target_rest = []
    _rng(seed, "pool").shuffle(pool)
    duplicates = sum(stats[n]["duplicates"] for n in names)

    # 4. Write.
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / "pool.jsonl", out_dir / "target.jsonl", out_dir / "heldout.jsonl")
    for path, rows in zip(paths, (pool, target_rows, heldout_rows), strict=True):
        _write_jsonl(path, rows)
    params: dict[str, object] = {
        "sources": names,
        "max_per_source": max_per_source,
        "target": target,
        "target_size": target_size,
        "seed": seed,
        "min_chars": min_chars,
    }
    packages = [p for s in srcs for p in s.packages]
    info = {
        "params": params,
        "files": {"pool": paths[0].name, "target": paths[1].name, "heldout": paths[2].name},
        "pool": {"records": len(pool), "by_source": counts, "by_label": labels},
        "target": {
            "slice": target,
            "slice_records": len(unique_slice),
            "slice_duplicates_dropped": slice_duplicates,
            "target": len(target_rows),
            "heldout": len(heldout_rows),
        },
        "duplicates_dropped": duplicates,
        "sources": {
            n: {
                k: stats[n].get(k, 0)
                for k in (
                    "records",
                    "too_short",
                    "target_slice",
                    "same_text_as_target",
                    "duplicates",
                    "eligible",
                    "pool",
                )
            }
            for n in stats
        },
        "debian_packages": package_versions(packages),
    }
    if "debian" in names:  # the descriptions change with every archive update
        info["apt_lists"] = debian_packages.list_dates()
    info_path = out_dir / "build.json"
    _write_json(info_path, info)
    seconds = time.perf_counter() - started
    log.info(
        "corpora: %d pool records, %d target, %d held out (%s) in %.1fs -> %s",
        len(pool),
        len(target_rows),
        len(heldout_rows),
        target,
        seconds,
        out_dir,
    )
    return CorpusBuild(
        *paths,
        info_path=info_path,
        counts=counts,
        target_count=len(target_rows),
        heldout_count=len(heldout_rows),
        duplicates_dropped=duplicates,
        label_counts=labels,
        params=params,
        seconds=seconds,
    )
