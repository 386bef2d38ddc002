"""Build a multi-source pool and a held-out target slice from the Debian corpora.

The pool mixes every source, each record tagged with ``source`` and its natural ``label``. The
target slice (``source:label``, e.g. ``gcide:Zool.``) is removed from the pool entirely before
anything else, so no target text can be selected; a sample of it is the target, the rest is kept
as ``heldout.jsonl`` for evaluation. Same arguments and seed give byte-identical files.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tunesift.corpora import bible, debian_packages, dictd, fortunes, gcide, perlfaq, wordnet
from tunesift.errors import TunesiftError


@dataclass(frozen=True)
class Source:
    name: str
    read: Callable[[], Iterator[dict[str, str]]]
    available: Callable[[], bool]
    packages: tuple[str, ...]


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "fortunes",
            fortunes.iter_fortunes,
            fortunes.available,
            ("fortunes", "fortunes-min", "fortunes-bofh-excuses", "fortune-anarchism"),
        ),
        Source("gcide", gcide.iter_gcide, gcide.available, ("dict-gcide",)),
        Source("wordnet", wordnet.iter_wordnet, wordnet.available, ("wordnet-base",)),
        Source("foldoc", dictd.iter_foldoc, lambda: dictd.available("foldoc"), ("dict-foldoc",)),
        Source("jargon", dictd.iter_jargon, lambda: dictd.available("jargon"), ("dict-jargon",)),
        Source("devil", dictd.iter_devil, lambda: dictd.available("devil"), ("dict-devil",)),
        Source("bible", bible.iter_bible, bible.available, ("bible-kjv", "bible-kjv-text")),
        Source("perlfaq", perlfaq.iter_perlfaq, perlfaq.available, ("perl-doc",)),
        Source("debian", debian_packages.iter_debian, debian_packages.available, ("apt (lists)",)),
    )
}
DEFAULT_SOURCES = tuple(SOURCES)


def sources_available(names: Sequence[str] = DEFAULT_SOURCES) -> bool:
    return all(SOURCES[n].available() for n in names)


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise TunesiftError(f"unknown corpus source {name!r}; choose from {', '.join(SOURCES)}")
    src = SOURCES[name]
    if not src.available():
        raise TunesiftError(
            f"corpus source {name!r} is not installed: apt-get install {' '.join(src.packages)} "
            "(scripts/setup.sh installs them all)"
        )
    return src


def parse_target(spec: str) -> tuple[str, str]:
    source, sep, label = spec.partition(":")
    if not sep or not source or not label:
        raise TunesiftError(f"--target must be SOURCE:LABEL (e.g. gcide:Zool.), got {spec!r}")
    return source, label


@dataclass
class CorpusBuild:
    pool_path: Path
    target_path: Path
    heldout_path: Path
    counts: dict[str, int]
    target_count: int
    heldout_count: int
    duplicates_dropped: int
    params: dict[str, object] = field(default_factory=dict)


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _package_versions(packages: Sequence[str]) -> dict[str, str]:
    names = [p for p in packages if " " not in p]
    try:
        out = subprocess.run(["dpkg-query", "-W", *names], capture_output=True, text=True).stdout
    except OSError:
        return {}
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


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
    """Write ``pool.jsonl``, ``target.jsonl``, ``heldout.jsonl`` and ``build.json`` into ``out_dir``."""
    target_source, target_label = parse_target(target)
    names = list(dict.fromkeys([*sources, target_source]))
    srcs = [_source(n) for n in names]
    rng = random.Random(seed)
    pool: list[dict[str, str]] = []
    slice_rows: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    labels: dict[str, Counter[str]] = {}
    seen: set[str] = set()
    duplicates = 0
    for src in srcs:
        rows = []
        for rec in src.read():
            if len(rec["text"]) < min_chars:
                continue
            if rec["source"] == target_source and rec["label"] == target_label:
                slice_rows.append(rec)
            elif src.name in sources:
                rows.append(rec)
        # deduplicate in read order (deterministic), then shuffle and cap
        unique = []
        for rec in rows:
            if rec["text"] in seen:
                duplicates += 1
                continue
            seen.add(rec["text"])
            unique.append(rec)
        rng.shuffle(unique)
        if max_per_source is not None:
            unique = unique[:max_per_source]
        counts[src.name] = len(unique)
        labels[src.name] = Counter(r["label"] for r in unique)
        pool.extend(unique)
    if len(slice_rows) < 1:
        raise TunesiftError(f"the target slice {target!r} is empty; see `tunesift corpora list`")
    slice_texts = {r["text"] for r in slice_rows}
    pool = [r for r in pool if r["text"] not in slice_texts]  # same text under another label
    rng.shuffle(slice_rows)
    target_rows = slice_rows[:target_size]
    heldout_rows = slice_rows[target_size:]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / "pool.jsonl", out_dir / "target.jsonl", out_dir / "heldout.jsonl")
    for path, rows in zip(paths, (pool, target_rows, heldout_rows), strict=True):
        _write_jsonl(path, rows)
    params = {
        "sources": list(sources),
        "max_per_source": max_per_source,
        "target": target,
        "target_size": target_size,
        "seed": seed,
        "min_chars": min_chars,
    }
    packages = sorted({p for s in srcs for p in s.packages})
    (out_dir / "build.json").write_text(
        json.dumps(
            {
                "params": params,
                "pool_by_source": counts,
                "pool_by_label": {k: dict(v.most_common()) for k, v in labels.items()},
                "target": len(target_rows),
                "heldout": len(heldout_rows),
                "duplicates_dropped": duplicates,
                "debian_packages": _package_versions(packages),
            },
            indent=1,
            ensure_ascii=False,
        )
        + "\n"
    )
    return CorpusBuild(
        *paths,
        counts=counts,
        target_count=len(target_rows),
        heldout_count=len(heldout_rows),
        duplicates_dropped=duplicates,
        params=params,
    )
