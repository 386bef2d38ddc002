"""The compare report (issue 16): table, composition, Jaccard heat map and each method's picks
on one map, opened in headless Chromium; and the report of a saved comparison."""

import json

import pytest
from headless import check_report, open_report, write_small_corpus

from tunesift.cli.main import main

COMPARE_FIGURES = {"ot_cost", "kl_reduction", "composition", "overlap", "maps"}


@pytest.fixture
def corpus(tmp_path):
    return write_small_corpus(tmp_path)


def _compare(tmp_path, corpus, *extra) -> int:
    a, c, t = corpus
    args = ["compare", "--pool", a, c, "--target", t, "--budget", 30, "--featurizer", "ngrams",
            "--methods", "gotd,dsir,random", "--cache-dir", tmp_path / "cache", "-q", *extra]  # fmt: skip
    return main([str(x) for x in args])


def test_compare_report_opens_in_chromium_with_every_figure(corpus, tmp_path, capsys):
    report = tmp_path / "out" / "compare.html"
    saved = tmp_path / "out" / "compare.json"
    assert _compare(tmp_path, corpus, "--report", report, "--save", saved) == 0
    assert f"wrote {report}" in capsys.readouterr().out
    check_report(report, tmp_path / "browser", COMPARE_FIGURES)
    html = report.read_text()
    for method in ("gotd", "dsir", "random"):
        assert f'<td class="l">{method}</td>' in html
    assert "(whole pool)" in html
    # from the saved JSON: everything but the map, which needs the selected rows
    again = tmp_path / "again.html"
    assert main(["report", str(saved), "--out", str(again)]) == 0
    assert "compare run, 4 figures, not shown: maps" in capsys.readouterr().out
    rendered = open_report(again, tmp_path / "browser2")
    assert set(rendered.figures) == COMPARE_FIGURES - {"maps"}
    assert json.loads(saved.read_text())["results"][0]["method"] == "gotd"


def test_compare_report_path_is_checked_before_any_work(corpus, tmp_path, capsys):
    assert _compare(tmp_path, corpus, "--report", tmp_path / "x.txt") == 2
    assert "--report must end with .html" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()
