"""Readers against bad input (issue 12 H3), and how a record's source is found (defect 7).

Every malformed file gives a one-line ``InputError`` naming the file (and the line, where there is
one), or under ``on_bad="skip"`` a counted, reported skip; never a traceback, a hang or a silent
drop. Hypothesis generates the damage; the cases it found are kept in tests/fuzz_corpus/ and
replayed through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunesift.cli.main import main
from tunesift.corpus.corpus import Corpus


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---- defect 7: --source-field on target records ------------------------------------------------


def _sources(corpus: Corpus) -> list[str]:
    return [s for b in corpus.batches() for s in b.sources]


def test_target_without_the_source_field_does_not_stop_a_gotd_run(tmp_path, capsys):
    # README: a record's source is the field --source-field names, else its own `source` field,
    # else its file name. A target file rarely carries the pool's domain field.
    pool = _jsonl(
        tmp_path / "pool.jsonl",
        [{"text": t, "domain": d} for t, d in [("the cat sat", "pets"), ("a dog barked", "pets"),
                                                ("compile the kernel", "code")]],
    )  # fmt: skip
    target = _jsonl(tmp_path / "task.jsonl", [{"text": "a cat and a dog"}])
    rc = main(["select", "--pool", str(pool), "--target", str(target), "--budget", "1",
               "--source-field", "domain", "--featurizer", "ngrams", "--cache-dir",
               str(tmp_path / "cache"), "--out", str(tmp_path / "sel.jsonl"), "-q"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "sel.jsonl").read_text())["domain"] == "pets"


def test_target_source_falls_back_to_its_own_source_then_the_file_name(tmp_path):
    path = _jsonl(
        tmp_path / "task.jsonl",
        [{"text": "a", "domain": "d"}, {"text": "b", "source": "own"}, {"text": "c"},
         {"text": "d", "domain": None}],
    )  # fmt: skip
    corpus = Corpus(path, source_field="domain", source_fallback=True)
    assert _sources(corpus) == ["d", "own", "task", "task"]
    assert corpus.report.bad == 0
    # the pool keeps the strict rule: a record without the named field is a bad record
    strict = Corpus(path, source_field="domain", on_bad="skip")
    assert _sources(strict) == ["d"] and strict.report.bad == 3
    # the fallback changes which records are good, so it is part of the fingerprint
    assert corpus.fingerprint() != strict.fingerprint()
    assert Corpus(path).fingerprint() == Corpus(path, source_fallback=False).fingerprint()
