"""What the select report reads and how its figures label themselves, without a browser: the
fast paths taken for a 1M-row run (issue 16, acceptance 3) give what the plain ones gave."""

import json
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunesift.errors import InputError
from tunesift.report import figures
from tunesift.report.select_run import column_values, read_selected_records

ROWS = [
    {"text": "a <b>", "source": "x", "index": 7, "score": 0.5, "rank": 1},
    {"text": "b", "source": "y", "index": 3, "score": None, "rank": 2},
    {"text": "c", "index": 11, "score": 2, "extra": {"nested": [1, 2]}, "rank": 3},
]


def _jsonl(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _same(got, rows):
    records, indices, scores = got
    assert indices.tolist() == [r["index"] for r in rows]
    want = [math.nan if r.get("score") is None else float(r["score"]) for r in rows]
    np.testing.assert_array_equal(scores, np.array(want))
    assert len(records) == len(rows)
    assert [records[k] for k in range(len(rows))] == rows
    assert records[-1] == rows[-1] and records[0:2] == rows[0:2]


def test_jsonl_records_read_by_arrow_match_json(tmp_path):
    path = _jsonl(tmp_path / "sel.jsonl", [json.dumps(r) for r in ROWS] + [""])
    _same(read_selected_records(path), ROWS)


def test_lines_arrow_cannot_read_fall_back_to_json(tmp_path):
    # a NaN literal (Python's json writes one) and an index written as a float
    lines = [json.dumps(ROWS[0]), '{"text": "n", "index": 5.0, "score": NaN}']
    records, indices, scores = read_selected_records(_jsonl(tmp_path / "s.jsonl", lines))
    assert indices.tolist() == [7, 5] and scores[0] == 0.5 and math.isnan(scores[1])
    assert records[1]["text"] == "n"


def test_bad_lines_and_missing_indices_are_named(tmp_path):
    with pytest.raises(InputError, match="not a JSON line") as err:
        read_selected_records(_jsonl(tmp_path / "a.jsonl", [json.dumps(ROWS[0]), "{oops"]))
    assert "a.jsonl:2" in str(err.value)
    with pytest.raises(InputError, match="no 'index'"):
        read_selected_records(_jsonl(tmp_path / "b.jsonl", ['{"text": "x", "score": 1}']))


def test_parquet_records(tmp_path):
    path = tmp_path / "sel.parquet"
    pq.write_table(pa.Table.from_pylist([{k: v for k, v in r.items() if k != "extra"}
                                         for r in ROWS]), path)  # fmt: skip
    records, indices, scores = read_selected_records(path)
    assert indices.tolist() == [7, 3, 11] and math.isnan(scores[1]) and scores[2] == 2.0
    assert records[0]["text"] == "a <b>" and records[2]["source"] is None


def test_column_values_over_chunks_offsets_and_nulls():
    col = pa.chunked_array([pa.array([1.0, None, 3.0]), pa.array([4.0, 5.0, None, 7.0]).slice(1)])
    np.testing.assert_array_equal(column_values(col, np.float64), [1, np.nan, 3, 5, np.nan, 7])
    ints = pa.chunked_array([pa.array([1, 2, 3], type=pa.int32()).slice(1)])
    got = column_values(ints, np.int64)
    assert got.dtype == np.int64 and got.tolist() == [2, 3]
    assert column_values(pa.chunked_array([], type=pa.float64()), np.float64).shape == (0,)


def test_log_axes_are_labelled_in_plain_text():
    """matplotlib's default log labels are mathtext (slow to lay out); ours are plain text."""
    scores = np.random.default_rng(0).gamma(2.0, size=20_000)
    svg = figures.score_histogram(scores, np.sort(scores)[:500], 1.0, key="t", title="t",
                                  xlabel="score")  # fmt: skip
    assert "mathdefault" not in svg
    assert {"1", "10", "100", "1k"} <= set(_texts(svg))
    svg = figures.curves([125, 250, 500], [("a", [3.0, 2.0, 1.0], figures.SELECTED)],
                         key="c", title="c", xlabel="k", ylabel="y")  # fmt: skip
    assert "mathdefault" not in svg and {"125", "250", "500"} <= set(_texts(svg))
    svg = figures.step_histograms([1, 3, 10, 30, 90], [("a", [1, 2, 3, 4], figures.POOL)],
                                  key="s", title="s", xlabel="tokens")  # fmt: skip
    assert "mathdefault" not in svg and {"2", "5", "10", "20", "50"} <= set(_texts(svg))


def _texts(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)
