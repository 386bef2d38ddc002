"""Tasks for GradEx: files of texts (or prompt/response pairs), or slices of the real corpora.

A task file is any format ``tunesift.corpus`` reads (JSONL, CSV/TSV, Parquet, TXT, a saved HF
dataset). A record with ``prompt`` and ``response`` fields is supervised on the response only;
otherwise its ``text`` field is supervised on every token. A record with neither is reported with
its file and line and counted, never silently dropped: any such record stops the run with the list.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from tunesift.corpus.readers import Problem, read_rows, resolve_format
from tunesift.errors import TunesiftError
from tunesift.tasks.lm import Example, Tokenizer

TASK_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt", ".gz")


def _rows(path: Path) -> Iterable[tuple[int, dict | Problem]]:
    yield from read_rows(path, resolve_format(path))


def read_task_file(path: str | Path, tokenizer: Tokenizer, max_length: int = 128) -> list[Example]:
    """Examples of one task file (see the module docstring for the fields)."""
    path = Path(path)
    if not path.exists():
        raise TunesiftError(f"task file not found: {path}")
    examples, bad = [], []
    for line, rec in _rows(path):
        if isinstance(rec, Problem) or not isinstance(rec, dict):
            bad.append(f"{path}:{line}: {getattr(rec, 'reason', 'not a record')}")
            continue
        prompt, response, text = rec.get("prompt"), rec.get("response"), rec.get("text")
        if isinstance(prompt, str) and isinstance(response, str) and response:
            examples.append(tokenizer.encode(prompt, response, max_length))
        elif isinstance(text, str) and text.strip():
            examples.append(tokenizer.encode(text, None, max_length))
        else:
            bad.append(f"{path}:{line}: no non-empty 'text', nor 'prompt' and 'response'")
    if bad:
        shown = "; ".join(bad[:5])
        raise TunesiftError(f"{len(bad)} unusable record(s) in {path}: {shown}")
    if not examples:
        raise TunesiftError(f"{path} holds no examples")
    return examples


def task_files(spec: str | Path | Sequence[str | Path]) -> dict[str, Path]:
    """Task name (file stem) -> file, from a folder of task files or a list of files."""
    items = [spec] if isinstance(spec, str | Path) else list(spec)
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.is_file() and p.suffix in TASK_SUFFIXES)
        elif item.exists():
            files.append(item)
        else:
            raise TunesiftError(f"no such task file or folder: {item}")
    out: dict[str, Path] = {}
    for p in files:
        name = p.name.split(".")[0]
        if name in out:
            raise TunesiftError(f"two task files are named {name!r}: {out[name]} and {p}")
        out[name] = p
    if len(out) < 2:
        raise TunesiftError(f"task selection needs at least two task files, found {len(out)}")
    return out


def corpus_slices(
    specs: Sequence[str], per_task: int, seed: int = 0, min_chars: int = 40
) -> dict[str, list[str]]:
    """``per_task`` seeded texts of each ``source:label`` (e.g. ``fortunes:science``), distinct
    across slices; a slice with too few texts is an error."""
    from tunesift.corpora.build import get_source

    wanted: dict[str, set[str]] = defaultdict(set)
    for spec in specs:
        source, _, label = spec.partition(":")
        if not label:
            raise TunesiftError(f"a corpus slice is source:label, got {spec!r}")
        wanted[source].add(label)
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for source, labels in wanted.items():
        src = get_source(source)
        src.require()
        pools: dict[str, list[str]] = defaultdict(list)
        for rec in src.records():
            text = rec["text"]
            if rec.get("label") in labels and len(text) >= min_chars and text not in seen:
                seen.add(text)
                pools[rec["label"]].append(text)
        for label in labels:
            texts = pools[label]
            if len(texts) < per_task:
                raise TunesiftError(f"{source}:{label} has {len(texts)} texts, {per_task} needed")
            out[f"{source}:{label}"] = random.Random(f"{seed}/{source}:{label}").sample(
                texts, per_task
            )
    return {s: out[s] for s in specs}
