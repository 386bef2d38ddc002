"""The select report (issue 16): ``select --report`` and ``tunesift report`` write one
self-contained HTML file that a real browser (headless Chromium) opens offline with every figure
drawn, no console message and no network request; it reads saved outputs only."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from headless import blank_figures, check_report, open_report, write_small_corpus

from tunesift.cli.main import main

SELECT_FIGURES = {"map", "sources", "scores", "ot_curve", "lengths"}


@pytest.fixture
def corpus(tmp_path):
    return write_small_corpus(tmp_path)


def _select(tmp_path: Path, corpus, *extra) -> int:
    a, c, t = corpus
    args = ["select", "--pool", a, c, "--target", t, "--budget", 40, "--featurizer", "ngrams",
            "--cache-dir", tmp_path / "cache", "--out", tmp_path / "run" / "selected.jsonl", "-q",
            *extra]  # fmt: skip
    return main([str(x) for x in args])


def test_select_report_opens_in_chromium_with_every_figure(corpus, tmp_path, capsys):
    report = tmp_path / "run" / "report.html"
    assert _select(tmp_path, corpus, "--scores-out", tmp_path / "run" / "scores.parquet",
                   "--report", report) == 0  # fmt: skip
    assert f"wrote {report}" in capsys.readouterr().out
    html = report.read_text()
    rendered = check_report(report, tmp_path / "browser", SELECT_FIGURES)
    assert rendered.screenshot.stat().st_size > 10_000
    assert not rendered.missing
    # the record's markup is shown as text, never run or parsed
    assert "&lt;script&gt;alert(1)" in html and "<script>alert" not in html
    assert "Why was this picked?" in html and "Best-scored items not picked" in html
    assert "300 of 300 pool points" in html
    # the sidecar says where the report's inputs are
    meta = json.loads((tmp_path / "run" / "selected.jsonl.meta.json").read_text())
    assert meta["outputs"]["scores"].endswith("scores.parquet")
    assert Path(meta["features_cache"]["pool"]).is_dir()
    assert sum(meta["token_lengths"]["pool"]) == 300
    assert sum(meta["token_lengths"]["selected"]) == 40
    # the five best-scored items left out, with their texts, so the report needs no pool pass
    misses = meta["near_misses"]
    assert len(misses) == 5 and all(m["text"] and m["source"] for m in misses)
    assert not {m["index"] for m in misses} & {json.loads(x)["index"] for x in
                                               (tmp_path / "run" / "selected.jsonl").open()}  # fmt: skip
    assert misses[0]["text"][:40] in html.replace("&#x27;", "'")


def test_report_command_rebuilds_the_same_file_from_saved_outputs(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    first = run / "report.html"
    assert _select(tmp_path, corpus, "--scores-out", run / "scores.csv", "--report", first) == 0
    again = tmp_path / "again.html"
    assert main(["report", str(run), "--out", str(again)]) == 0
    assert "select run, 5 figures" in capsys.readouterr().out
    assert again.read_bytes() == first.read_bytes()
    # byte for byte again, from the sidecar itself
    third = tmp_path / "third.html"
    assert main(["report", str(run / "selected.jsonl.meta.json"), "--out", str(third)]) == 0
    assert third.read_bytes() == first.read_bytes()


def test_report_without_cache_or_scores_says_what_is_missing(corpus, tmp_path, capsys):
    assert _select(tmp_path, corpus) == 0  # no --scores-out
    shutil.rmtree(tmp_path / "cache" / "features")
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "run"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "not shown: map, ot_curve" in printed
    html = out.read_text()
    assert "no longer in the cache" in html and "wrote no scores file" in html
    rendered = open_report(out, tmp_path / "browser")
    assert set(rendered.figures) == {"sources", "scores", "lengths"}
    assert not blank_figures(rendered) and not rendered.console and not rendered.requests


def test_report_of_precomputed_features_without_records(tmp_path):
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(size=(1900, 4)), rng.normal(size=(100, 4)) + [4, 0, 0, 0]])
    y = rng.normal(size=(60, 4)) + [4, 0, 0, 0]
    np.save(tmp_path / "X.npy", x.astype(np.float32))
    np.save(tmp_path / "Y.npy", y.astype(np.float32))
    report = tmp_path / "fig3.html"
    args = ["select", "--pool-features", tmp_path / "X.npy", "--target-features",
            tmp_path / "Y.npy", "--budget", 100, "--out", tmp_path / "sel.jsonl", "-q",
            "--report", report]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    html = report.read_text()
    assert "2,000 of 2,000 pool points" in html
    check_report(report, tmp_path / "browser", {"map", "scores", "ot_curve"})


def test_report_flags_are_checked_before_any_work(corpus, tmp_path, capsys):
    assert _select(tmp_path, corpus, "--report", tmp_path / "r.pdf") == 2
    assert "--report must end with .html" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.html")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    (tmp_path / "notes.json").write_text("[1, 2]")
    assert main(["report", str(tmp_path / "notes.json"), "--out", str(tmp_path / "x.html")]) == 2
    assert "not a tunesift output" in capsys.readouterr().err


def test_the_browser_check_catches_requests_console_and_blank_figures(tmp_path):
    """The checker itself: a page that fetches, logs, or draws nothing does not pass."""
    from headless import page_requests, static_external_references

    fetch = '<img src="https://example.com/x.png">'
    assert static_external_references(fetch)
    assert static_external_references('<div style="background:url(//cdn.example/x.png)">')
    assert not static_external_references('<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    page = tmp_path / "bad.html"
    blank = '<figure data-figure="empty"><div class="plot" style="width:300px;height:200px"></div></figure>'
    page.write_text(f"<html><body>{blank}<script>console.error('boom')</script>"
                    f'<div style="background:url(https://example.com/y.png);height:9px"></div></body></html>')  # fmt: skip
    import headless

    with pytest.raises(AssertionError, match="outside resources"):
        open_report(page, tmp_path / "b")
    # past the static check (as if it had missed the url), the browser's own logs catch both
    done = headless.run_chromium(
        ["--window-size=400,300", f"--log-net-log={tmp_path / 'net.json'}",
         "--enable-logging=stderr", "--v=0", f"--screenshot={tmp_path / 'b.png'}",
         page.resolve().as_uri()], tmp_path, "raw",
    )  # fmt: skip
    assert any(":CONSOLE" in line for line in done.stderr.splitlines())
    assert page_requests(tmp_path / "net.json") == ["https://example.com/y.png"]
    blanks = blank_figures(
        headless.Rendered(
            tmp_path / "b.png", {"empty": {"x": 8, "y": 8, "w": 300, "h": 200}}, [], [], []
        )  # fmt: skip
    )
    assert blanks and blanks[0].startswith("empty")


def test_readme_main_job_report_opens_with_every_figure(corpus, tmp_path, shared_cache):
    """The README's select command as written (MiniLM, --group-by label, --report), on a small
    corpus instead of data/default and a budget that fits it."""
    import shlex

    from test_readme import readme_commands

    main_job = readme_commands()[0]
    words = shlex.split(main_job[main_job.index("tunesift select") :])[1:]
    a, c, t = corpus
    run = tmp_path / "runs" / "default"
    swap = {"--pool": [a, c], "--target": [t], "--budget": [40],
            "--out": [run / "selected.jsonl"], "--report": [run / "report.html"]}  # fmt: skip
    args, k = [], 0
    while k < len(words):
        args.append(words[k])
        if words[k] in swap:
            args += [str(v) for v in swap[words[k]]]
            k += 2
        else:
            k += 1
    assert main([*args, "--cache-dir", str(shared_cache), "-q"]) == 0
    rendered = check_report(run / "report.html", tmp_path / "browser", SELECT_FIGURES)
    assert rendered.screenshot.exists()
    # a shot of this small run on request; docs/report-select.png, the default data's, is made
    # by scripts/report_screenshot.py (docs/report.md)
    if os.environ.get("TUNESIFT_SCREENSHOT_TO"):
        shutil.copyfile(rendered.screenshot, os.environ["TUNESIFT_SCREENSHOT_TO"])


def test_report_may_go_into_the_run_folder_but_never_over_a_users_file(corpus, tmp_path, capsys):
    assert _select(tmp_path, corpus) == 0
    run = tmp_path / "run"
    assert main(["report", str(run), "--out", str(run / "report.html")]) == 0
    html = run / "selected.jsonl.meta.json.html"
    html.write_text("mine")
    assert main(["report", str(run), "--out", str(html)]) == 2
    assert "not written by tunesift" in capsys.readouterr().err
    assert html.read_text() == "mine"
