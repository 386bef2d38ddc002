"""Corpus reading: every format round-trips, indices span files, and no bad row goes unaccounted."""

import gzip
import json

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
    elif name.endswith((".csv", ".tsv")):
        import csv

        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(
                fh, fieldnames=list(rows[0]), delimiter="," if name.endswith(".csv") else "\t"
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
    "name", ["p.jsonl", "p.ndjson", "p.jsonl.gz", "p.parquet", "p.csv", "p.tsv"]
)
def test_formats_round_trip(tmp_path, name):
    recs = all_records(Corpus(write(tmp_path, name), id_field="id", source_field="src"))
    assert [r["text"] for r in recs] == [r["text"] for r in ROWS]
    assert [r["id"] for r in recs] == ["a", "b", "c"]
    assert [r["source"] for r in recs] == ["web", "wiki", "web"]
    assert [r["index"] for r in recs] == [0, 1, 2]
    assert set(recs[0]["fields"]) == {"text", "id", "src", "extra"}


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
    assert c.report.bad_by_reason == {"missing field 'response' for --text-template": 1}
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
