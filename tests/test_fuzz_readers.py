"""Readers against bad input (issue 12 H3), and how a record's source is found (defect 7).

Every malformed file gives a one-line ``InputError`` naming the file (and the line, where there is
one), or under ``on_bad="skip"`` a counted, reported skip; never a traceback, a hang or a silent
drop. Hypothesis generates the damage; the cases it found are kept in tests/fuzz_corpus/ and
replayed through the CLI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunesift.cli.main import main
from tunesift.corpus.corpus import Corpus
from tunesift.errors import InputError


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


# ---- H3: fuzzing the readers -------------------------------------------------------------------

#: CI runs a fixed, modest set of examples; TUNESIFT_FUZZ_EXAMPLES=5000 runs a random hunt
#: (what it finds goes to tests/fuzz_corpus/, replayed below)
_HUNT = int(os.environ.get("TUNESIFT_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_HUNT or 60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=not _HUNT,
    database=None,
)


GOOD = [{"text": "the cat sat on the mat", "id": "a"}, {"text": "a dog barked", "id": "b"},
        {"text": "compile the kernel", "id": "c"}]  # fmt: skip


def _good_jsonl_bytes() -> bytes:
    return "".join(json.dumps(r) + "\n" for r in GOOD).encode()


def _read_all(path: Path, on_bad: str, **options) -> Corpus:
    corpus = Corpus(path, on_bad=on_bad, **options)
    for _ in corpus.batches(2):
        pass
    return corpus


def _check_error(exc: InputError, path: Path) -> None:
    text = str(exc)
    assert "\n" not in text, text
    assert str(path) in text, text


def _expected_rows(data: bytes) -> int:
    """Non-blank physical lines: each must end up a good record or a counted bad one."""
    lines = data.split(b"\n")
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    return sum(1 for line in lines if line.strip())


def _roundtrip(path: Path, data: bytes, **options) -> None:
    """The fuzz property for a line-based file holding ``data``."""
    path.write_bytes(data)
    try:
        skipped = _read_all(path, "skip", **options)
    except InputError as exc:  # a whole-file problem (a JSON array, a damaged gzip stream)
        _check_error(exc, path)
        with pytest.raises(InputError):
            _read_all(path, "error", **options)
        return
    rep = skipped.report
    if path.suffix == ".jsonl":
        assert rep.good + rep.bad == _expected_rows(data), (rep.good, rep.bad)
    assert sum(rep.bad_by_reason.values()) == rep.bad
    try:
        _read_all(path, "error", **options)
    except InputError as exc:
        _check_error(exc, path)
        assert rep.bad > 0 and exc.line is not None  # the first bad row, by its line
    else:
        assert rep.bad == 0


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for pos, byte in edits:
        if not buf:
            break
        buf[pos % len(buf)] = byte
    return bytes(buf)


def _read_damaged(path: Path, data: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    """The fuzz property for a binary file: ``data`` with bytes overwritten (``edits``) and its
    last ``cut`` bytes cut off reads with either ``on_bad``, or fails with an ``InputError``
    naming ``path``."""
    path.write_bytes(_mutate(data, edits)[: max(0, len(data) - cut)])
    for on_bad in ("skip", "error"):
        try:
            _read_all(path, on_bad)
        except InputError as exc:
            _check_error(exc, path)


EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_jsonl_arbitrary_bytes(tmp_path, data):
    _roundtrip(tmp_path / "f.jsonl", data)


@FUZZ
@given(edits=EDITS, cut=st.integers(0, 200), nul=st.integers(0, 200))
def test_fuzz_jsonl_damaged_records(tmp_path, edits, cut, nul):
    data = _mutate(_good_jsonl_bytes(), edits)
    data = data[: len(data) - cut % (len(data) + 1)]  # truncated
    data = data[:nul] + b"\0" + data[nul:]  # a NUL byte
    _roundtrip(tmp_path / "f.jsonl", data, id_field="id")


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(), st.text(max_size=8),
            st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.none()),
        ),
        min_size=1, max_size=6,
    ),
    st.sampled_from(["jsonl", "parquet"]),
)  # fmt: skip
def test_fuzz_text_field_values(tmp_path, values, fmt):
    """Missing, null and non-string text fields: each a counted bad record, never a crash."""
    rows = [{"text": v} if i % 3 else {"other": v} for i, v in enumerate(values)]
    path = tmp_path / f"f.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        texts = [r.get("text") for r in rows]
        try:
            table = pa.table({"text": pa.array([None if not isinstance(t, str) else t
                                                for t in texts], pa.string())})  # fmt: skip
        except pa.ArrowException:
            return
        pq.write_table(table, path)
    corpus = _read_all(path, "skip")
    good = (
        sum(1 for r in rows if isinstance(r.get("text"), str) and r["text"].strip())
        if fmt == "jsonl"
        else sum(1 for t in table.column("text").to_pylist() if t and t.strip())
    )
    assert corpus.report.good == good
    assert corpus.report.good + corpus.report.bad == len(rows)


@FUZZ
@given(edits=EDITS, cut=st.integers(0, 4000))
def test_fuzz_gzip_truncated_and_corrupted(tmp_path, edits, cut):
    import gzip

    _read_damaged(tmp_path / "f.jsonl.gz", gzip.compress(_good_jsonl_bytes() * 20), edits, cut)


@FUZZ
@given(edits=EDITS, cut=st.integers(0, 3000))
def test_fuzz_parquet_truncated_and_corrupted(tmp_path, edits, cut):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(GOOD * 10), buf, compression="snappy")
    _read_damaged(tmp_path / "f.parquet", buf.getvalue(), edits, cut)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["csv", "tsv", "txt"]))
def test_fuzz_csv_tsv_txt_arbitrary_bytes(tmp_path, data, fmt):
    _roundtrip(tmp_path / f"f.{fmt}", data)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "latin-1", "cp1252", "shift_jis"])
def test_wrong_encodings_are_bad_rows_with_their_line(tmp_path, encoding):
    text = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n"
                   for t in ["café au lait", "naïve façade", "日本語のテキスト"])  # fmt: skip
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode(encoding, errors="replace")
    _roundtrip(tmp_path / "f.jsonl", data)
    if encoding in ("utf-16", "utf-32", "latin-1"):
        with pytest.raises(InputError, match=r"f\.jsonl:1: "):
            _read_all(tmp_path / "f.jsonl", "error")


def test_empty_and_blank_files_read_as_no_records(tmp_path):
    for name, data in [("e.jsonl", b""), ("b.jsonl", b"\n \n\t\n"), ("e.csv", b""),
                       ("h.csv", b"text\n"), ("e.txt", b"\n\n")]:  # fmt: skip
        path = tmp_path / name
        path.write_bytes(data)
        corpus = _read_all(path, "error")
        assert corpus.report.good == 0 and corpus.report.bad == 0


def test_duplicate_ids_are_bad_records_naming_the_first(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "a", "id": 1}, {"text": "b", "id": 2},
                                         {"text": "c", "id": 1}])  # fmt: skip
    with pytest.raises(InputError, match=r"d\.jsonl:3: duplicate id '1' \(first at line 1\)"):
        _read_all(path, "error", id_field="id")
    corpus = _read_all(path, "skip", id_field="id")
    assert corpus.report.good == 2 and corpus.report.bad == 1
    assert _read_all(path, "error").report.good == 3  # without --id-field ids are file:line


@pytest.mark.slow
def test_a_100_mb_single_line_is_read_in_bounded_time(tmp_path):
    import time

    path = tmp_path / "huge.jsonl"
    word = "lorem ipsum dolor sit amet "
    with open(path, "w") as fh:
        fh.write('{"text": "')
        fh.write(word * (100 * 2**20 // len(word)))
        fh.write('"}\n{"text": "short"}\n')
        fh.write('{"text": "' + "x" * (50 * 2**20) + "\n")  # and a truncated huge one
    t0 = time.perf_counter()
    corpus = _read_all(path, "skip")
    assert corpus.report.good == 2 and corpus.report.bad == 1
    assert time.perf_counter() - t0 < 60


# ---- the regression corpus, replayed through the CLI -------------------------------------------

CORPUS = Path(__file__).parent / "fuzz_corpus"
CASES = json.loads((CORPUS / "cases.json").read_text())["cases"]


def test_every_corpus_file_has_a_case():
    files = {p.name for p in CORPUS.iterdir() if p.name != "cases.json"}
    assert files == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_corpus_replays_through_the_cli(tmp_path, capsys, name):
    case = CASES[name]
    target = _jsonl(tmp_path / "target.jsonl", [{"text": "a cat and a dog", "id": "t1"}])
    common = ["select", "--pool", str(CORPUS / name), "--target", str(target), "--budget", "1",
              "--featurizer", "ngrams", "--cache-dir", str(tmp_path / "cache"), "-q",
              *case.get("args", [])]  # fmt: skip
    rc = main([*common, "--out", str(tmp_path / "e.jsonl")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert case["error"] in err, err
    rc = main([*common, "--on-bad", "skip", "--out", str(tmp_path / "s.jsonl")])
    captured = capsys.readouterr()
    whole_file = not case["skip"].startswith("bad records skipped")
    assert rc == (2 if whole_file else 0), captured.err
    assert case["skip"] in (captured.err if whole_file else captured.out)
    if whole_file:
        assert captured.err.count("\n") == 1
