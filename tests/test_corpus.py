"""Corpus reading: every format round-trips, indices span files, and no bad row goes unaccounted."""

import csv
import gzip
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunesift.corpus.corpus import Corpus
from tunesift.errors import InputError

ROWS = [
    {"text": "first document", "id": "a", "src": "web", "extra": 1},
    {"text": "second, with a comma", "id": "b", "src": "wiki", "extra": 2},
    {"text": "third document", "id": "c", "src": "web", "extra": 3},
]


def write(tmp_path, name, rows=ROWS):
    path = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif name.endswith((".csv", ".tsv", ".tab", ".csv.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "wt", newline="") as fh:
            w = csv.DictWriter(
                fh, fieldnames=list(rows[0]), delimiter="\t" if "csv" not in name else ","
            )
            w.writeheader()
            w.writerows(rows)
    elif name.endswith(".txt"):
        path.write_text("".join(r["text"] + "\n" for r in rows))
    elif name.endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def all_records(corpus, batch_size=1024):
    out = []
    for b in corpus.batches(batch_size):
        assert len(b.index) == len(b.ids) == len(b.texts) == len(b.sources) == len(b.fields)
        out += [
            dict(index=i, id=d, text=t, source=s, fields=f, location=loc)
            for i, d, t, s, f, loc in zip(
                b.index, b.ids, b.texts, b.sources, b.fields, b.location, strict=True
            )
        ]
    return out


@pytest.mark.parametrize(
    "name",
    ["p.jsonl", "p.ndjson", "p.json", "P.JSONL", "p.jsonl.gz", "p.parquet", "p.csv", "p.tsv"]
    + ["p.tab", "p.csv.gz"],
)
def test_formats_round_trip(tmp_path, name):
    recs = all_records(Corpus(write(tmp_path, name), id_field="id", source_field="src"))
    assert [r["text"] for r in recs] == [r["text"] for r in ROWS]
    assert [r["id"] for r in recs] == ["a", "b", "c"]
    assert [r["source"] for r in recs] == ["web", "wiki", "web"]
    assert [r["index"] for r in recs] == [0, 1, 2]
    delimited = name.lower().endswith((".csv", ".tsv", ".tab", ".csv.gz"))
    want = [{k: str(v) for k, v in r.items()} for r in ROWS] if delimited else ROWS
    assert [r["fields"] for r in recs] == want
    assert [r["location"] for r in recs] == [
        (str(tmp_path / name), n + delimited) for n in (1, 2, 3)
    ]


def test_plain_text_and_default_id_and_source(tmp_path):
    path = write(tmp_path, "notes.txt")
    recs = all_records(Corpus(path))
    assert [r["text"] for r in recs] == [r["text"] for r in ROWS]
    assert [r["id"] for r in recs] == ["notes.txt:1", "notes.txt:2", "notes.txt:3"]
    assert {r["source"] for r in recs} == {"notes"}


def test_hf_dataset_round_trip(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    recs = all_records(Corpus(tmp_path / "ds", source_field="src"))
    assert [r["text"] for r in recs] == [r["text"] for r in ROWS]
    assert recs[1]["fields"]["extra"] == 2
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)})
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(InputError, match="train"):
        Corpus(tmp_path / "dd")


def test_indices_span_files_and_batches(tmp_path):
    c = Corpus([write(tmp_path, "a.jsonl"), write(tmp_path, "b.csv")])
    for size in (1, 2, 1000):
        recs = all_records(c, size)
        assert [r["index"] for r in recs] == list(range(6))
        assert [r["source"] for r in recs] == ["a"] * 3 + ["b"] * 3
    assert c.count() == 6
    assert c.report.per_file == {str(tmp_path / "a.jsonl"): 3, str(tmp_path / "b.csv"): 3}


def test_source_defaults_to_the_source_field_then_the_file_stem(tmp_path):
    path = write(
        tmp_path,
        "mix.jsonl",
        [{"text": "a", "source": "web"}, {"text": "b"}, {"text": "c", "source": ""}],
    )
    assert [r["source"] for r in all_records(Corpus(path))] == ["web", "mix", "mix"]


def test_text_template(tmp_path):
    path = write(tmp_path, "qa.jsonl", [{"prompt": "2+2?", "response": "4"}, {"prompt": "hi"}])
    c = Corpus(path, text_template="{prompt}\n{response}", on_bad="skip")
    recs = all_records(c)
    assert [r["text"] for r in recs] == ["2+2?\n4"]
    assert c.report.bad_by_reason == {"missing field 'response' for text_template": 1}
    with pytest.raises(InputError, match="template"):
        Corpus(path, text_template="{prompt")


def test_bad_rows_error_with_file_and_line(tmp_path):
    cases = {
        "bad.jsonl": (b'{"text": "ok"}\n\n{"text": oops}\n', "bad.jsonl:3", "malformed JSON"),
        "latin.jsonl": (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', "latin.jsonl:2", "UTF-8"),
        "latin.csv": (b'text,id\nok,1\n"caf\xe9",2\n', "latin.csv:3", "UTF-8"),
        "latin.txt": (b"ok\ncaf\xe9\n", "latin.txt:2", "UTF-8"),
        "cols.csv": (b"text,id\nok,1\nbad,2,3\n", "cols.csv:3", "expected 2 columns"),
        "notext.jsonl": (b'{"body": "x", "title": "y"}\n', "notext.jsonl:1", "fields: body, title"),
        "num.jsonl": (b'{"text": 3}\n', "num.jsonl:1", "not a string"),
        "blank.jsonl": (b'{"text": "  "}\n', "blank.jsonl:1", "empty text"),
        "list.jsonl": (b"[1, 2]\n", "list.jsonl:1", "must be an object"),
    }
    for name, (content, where, why) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InputError) as info:
            all_records(Corpus(tmp_path / name))
        assert where in str(info.value) and why in str(info.value), (name, str(info.value))


def test_multiline_csv_field_keeps_line_numbers(tmp_path):
    (tmp_path / "m.csv").write_bytes(b'text,id\n"two\nlines",1\nok,2\n"caf\xe9",3\n')
    with pytest.raises(InputError, match="m.csv:5"):
        all_records(Corpus(tmp_path / "m.csv"))


def test_skip_counts_every_bad_row_and_keeps_the_rest(tmp_path):
    (tmp_path / "mixed.jsonl").write_bytes(
        b'{"text": "a"}\n{"text": oops}\n{"body": 1}\n{"text": "caf\xe9"}\n{"text": "b"}\n{"text": ""}\n'
    )
    c = Corpus(tmp_path / "mixed.jsonl", on_bad="skip")
    recs = all_records(c)
    assert [r["text"] for r in recs] == ["a", "b"]
    assert [r["index"] for r in recs] == [0, 1]
    assert [r["location"][1] for r in recs] == [1, 5]
    assert c.report.good == 2 and c.report.bad == 4
    assert [e.line for e in c.report.examples] == [2, 3, 4, 6]
    assert sum(c.report.bad_by_reason.values()) == 4


def test_missing_id_or_source_field(tmp_path):
    path = write(tmp_path, "p.jsonl", [{"text": "x"}])
    with pytest.raises(InputError, match="missing id field 'id'"):
        all_records(Corpus(path, id_field="id"))
    with pytest.raises(InputError, match="missing source field 'src'"):
        all_records(Corpus(path, source_field="src"))


def test_paths_and_formats_checked_up_front(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        Corpus(tmp_path / "missing.jsonl")
    (tmp_path / "x.docx").write_text("?")
    with pytest.raises(InputError, match=r"x\.docx: unknown format"):
        Corpus(tmp_path / "x.docx")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="Hugging Face"):
        Corpus(tmp_path / "plain")
    with pytest.raises(InputError, match="on_bad"):
        Corpus(write(tmp_path, "p.jsonl"), on_bad="ignore")
    # an explicit format overrides the extension
    (tmp_path / "data.log").write_text('{"text": "x"}\n')
    assert all_records(Corpus(tmp_path / "data.log", format="jsonl"))[0]["text"] == "x"


def test_fingerprint_tracks_files_and_options(tmp_path):
    path = write(tmp_path, "p.jsonl")
    a = Corpus(path).fingerprint()
    assert Corpus(path).fingerprint() == a
    assert Corpus(path, text_field="id").fingerprint() != a
    path.write_text(path.read_text() + json.dumps({"text": "new"}) + "\n")
    assert Corpus(path).fingerprint() != a


def test_hf_dataset_needs_the_datasets_package(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(InputError, match=r"pip install 'tunesift\[hf\]'"):
        Corpus(tmp_path / "ds")


def test_hf_checks_layout_even_with_an_explicit_format(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)})
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(InputError, match=r"dd: this is a DatasetDict.*train"):
        Corpus(tmp_path / "dd", format="hf")
    with pytest.raises(InputError, match="save_to_disk"):
        Corpus(write(tmp_path, "p.jsonl"), format="hf")
    with pytest.raises(InputError, match="is a directory"):
        Corpus(tmp_path / "dd", format="jsonl")


def test_more_bad_input_with_file_and_line(tmp_path):
    cases = {
        "late.jsonl": (
            b'{"text": "ok"}\n{"text": "ok"}\n\n  \n{"text": [1]}\n',
            "late.jsonl:5",
            "not a string",
        ),
        "surrogate.jsonl": (b'{"text": "a \\ud800 b"}\n', "surrogate.jsonl:1", "lone surrogate"),
        "null.jsonl": (b'{"text": null}\n', "null.jsonl:1", "not a string"),
        "latin.tsv": (b"text\tid\nok\t1\n\ncaf\xe9\t2\n", "latin.tsv:4", "UTF-8"),
        "gap.txt": (b"ok\n\n   \n\xff\xfe\n", "gap.txt:4", "UTF-8"),
        "gz.jsonl.gz": (
            gzip.compress(b'{"text": "ok"}\n{oops}\n'),
            "gz.jsonl.gz:2",
            "malformed JSON",
        ),
        "commas.csv": (b"text,id\nok,1\n,,\n", "commas.csv:3", "expected 2 columns, got 3"),
        "dup.csv": (b"text,text\na,b\n", "dup.csv:1", "repeats column(s) 'text'"),
        "array.json": (
            b'[\n  {"text": "a"}\n]\n',
            "array.json:1",
            "one JSON array, not JSON lines",
        ),
    }
    for name, (content, where, why) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InputError) as info:
            all_records(Corpus(tmp_path / name))
        assert where in str(info.value) and why in str(info.value), (name, str(info.value))


def test_damaged_gzip_is_an_input_error(tmp_path):
    (tmp_path / "plain.jsonl.gz").write_text('{"text": "not compressed"}\n')
    with pytest.raises(InputError, match=r"plain\.jsonl\.gz: cannot read"):
        all_records(Corpus(tmp_path / "plain.jsonl.gz"))
    data = gzip.compress(b'{"text": "x"}\n' * 50)
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) - 12])
    with pytest.raises(InputError, match=r"cut\.jsonl\.gz: cannot read after line \d+"):
        all_records(Corpus(tmp_path / "cut.jsonl.gz"))


def test_byte_order_marks_are_not_text(tmp_path):
    bom = b"\xef\xbb\xbf"
    (tmp_path / "b.csv").write_bytes(bom + b"text,id\nhello,1\n")
    (tmp_path / "b.jsonl").write_bytes(bom + b'{"text": "hello"}\n')
    (tmp_path / "b.txt").write_bytes(bom + b"hello\n")
    recs = all_records(Corpus([tmp_path / "b.csv", tmp_path / "b.jsonl", tmp_path / "b.txt"]))
    assert [r["text"] for r in recs] == ["hello"] * 3
    assert set(recs[0]["fields"]) == {"text", "id"}


def test_missing_text_field_hint_only_where_it_helps(tmp_path, caplog):
    (tmp_path / "first.jsonl").write_bytes(b'{"body": "x", "title": "y"}\n{"body": "z"}\n')
    with pytest.raises(InputError, match="first.jsonl:1: .*fields: body, title.*text_field"):
        all_records(Corpus(tmp_path / "first.jsonl"))
    (tmp_path / "later.jsonl").write_bytes(b'{"text": "x"}\n{"body": "z"}\n')
    with pytest.raises(InputError) as info:
        all_records(Corpus(tmp_path / "later.jsonl"))
    assert (
        str(info.value) == f"{tmp_path / 'later.jsonl'}:2: missing text field 'text' (fields: body)"
    )
    # skipping: one stable reason per field set, and a warning for the file that looks misnamed
    c = Corpus(tmp_path / "first.jsonl", on_bad="skip")
    with caplog.at_level("WARNING", logger="tunesift.corpus.corpus"):
        assert all_records(c) == []
    assert c.report.bad_by_reason == {
        "missing text field 'text' (fields: body, title)": 1,
        "missing text field 'text' (fields: body)": 1,
    }
    assert "text_field" in caplog.text


def test_skip_counts_each_reason_across_formats(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(
        b'{"text": "a1", "id": 1}\n{"text": 5, "id": 2}\n{"text": "a3"}\n{"text": "a4", "id": null}\n'
    )
    (tmp_path / "b.csv").write_bytes(b"text,id\nb1,1\nb2\n\xff,3\n  ,4\nb5,5\n")
    (tmp_path / "c.txt").write_bytes(b"c1\n\n\xffc2\nc3\n")
    c = Corpus([tmp_path / n for n in ("a.jsonl", "b.csv", "c.txt")], on_bad="skip", id_field="id")
    c_txt = Corpus(tmp_path / "c.txt", on_bad="skip")
    recs = all_records(c) + all_records(c_txt)
    assert [r["text"] for r in recs] == ["a1", "b1", "b5", "c1", "c3"]
    assert [r["index"] for r in recs] == [0, 1, 2, 0, 1]
    assert [r["location"][1] for r in recs] == [1, 2, 6, 1, 4]
    assert c.report.bad_by_reason == {
        "field 'text' is not a string (int)": 1,
        "missing id field 'id'": 3,  # a3, and the two readable lines of c.txt
        "id field 'id' is null": 1,
        "expected 2 columns, got 1": 1,
        "not valid UTF-8": 2,
        "empty text": 1,
    }
    assert c.report.good == 3 and c.report.bad == 9
    assert c.report.per_file == {
        str(tmp_path / "a.jsonl"): 1,
        str(tmp_path / "b.csv"): 2,
        str(tmp_path / "c.txt"): 0,
    }
    assert c_txt.report.bad_by_reason == {"not valid UTF-8": 1}


def test_text_template_fields(tmp_path):
    path = write(
        tmp_path,
        "t.jsonl",
        [
            {"q": {"en": "hi"}, "a": "yo", "n": 1},
            {"q": {"en": "x"}, "a": None},
            {"q": {}, "a": "z"},
        ],
    )
    c = Corpus(path, text_template="{q[en]} -> {a} #{n:03d}", on_bad="skip")
    assert [r["text"] for r in all_records(c)] == ["hi -> yo #001"]
    assert c.report.bad_by_reason == {
        "field 'a' is null for text_template": 1,
        "missing field 'n' for text_template": 1,
    }
    for bad in ("{}", "{0}", "{a!x}", "no fields", "{a"):
        with pytest.raises(InputError, match="text_template"):
            Corpus(path, text_template=bad)


def test_default_source_is_the_name_without_format_extensions(tmp_path):
    names = ["wiki.jsonl.gz", "news.2024-05.jsonl", "data.log"]
    paths = [write(tmp_path, n, [{"text": "x"}]) for n in names[:2]]
    (tmp_path / "data.log").write_text('{"text": "x"}\n')
    recs = all_records(Corpus([*paths, tmp_path / "data.log"], format="jsonl"))
    assert [r["source"] for r in recs] == ["wiki", "news.2024-05", "data.log"]
    assert [r["id"] for r in recs] == ["wiki.jsonl.gz:1", "news.2024-05.jsonl:1", "data.log:1"]


def test_huge_csv_field(tmp_path):
    big = "word " * 100_000  # 500 KB, beyond the csv module's default field limit
    (tmp_path / "big.csv").write_text(f"text,id\n{big},1\n")
    assert all_records(Corpus(tmp_path / "big.csv"))[0]["text"] == big


def test_same_file_twice_counts_twice(tmp_path):
    path = write(tmp_path, "p.jsonl")
    c = Corpus([path, path])
    assert [r["index"] for r in all_records(c)] == list(range(6))
    assert c.report.per_file == {str(path): 6} and c.report.good == 6


def test_batches_rejects_a_size_below_one(tmp_path):
    with pytest.raises(ValueError):
        Corpus(write(tmp_path, "p.jsonl")).batches(0)


def test_count_is_cached_until_a_file_changes(tmp_path):
    path = write(tmp_path, "p.jsonl")
    c = Corpus(path)
    assert c.count() == 3
    path.unlink()  # a cached count reads nothing; only the fingerprint stats the file
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert c.count() == 3
    with open(path, "a") as fh:
        fh.write('{"text": "four"}\n')
    assert c.count() == 4


def test_fingerprint_of_dirs_and_on_bad(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    path = write(tmp_path, "p.jsonl")
    a = Corpus([path, tmp_path / "ds"]).fingerprint()
    assert len(a) == 64 and int(a, 16) >= 0
    assert Corpus([path, tmp_path / "ds"], on_bad="skip").fingerprint() == a  # same good records
    assert Corpus([tmp_path / "ds", path]).fingerprint() != a
    (tmp_path / "ds" / "extra.txt").write_text("x")
    assert Corpus([path, tmp_path / "ds"]).fingerprint() != a


def test_records_at_returns_exactly_the_wanted_rows(tmp_path):
    c = Corpus([write(tmp_path, "a.jsonl"), write(tmp_path, "b.parquet")], id_field="id")
    got = c.records_at([4, 0, 4])
    assert sorted(got) == [0, 4]
    assert got[0] == {
        "index": 0,
        "id": "a",
        "text": ROWS[0]["text"],
        "source": "a",
        "fields": ROWS[0],
        "location": (str(tmp_path / "a.jsonl"), 1),
    }
    assert got[4]["text"] == ROWS[1]["text"] and got[4]["location"] == (
        str(tmp_path / "b.parquet"),
        2,
    )
    assert c.records_at([]) == {}
    with pytest.raises(IndexError, match="6 records"):
        c.records_at([1, 6])
