"""The bench and evaluate reports (issue 16): result tables with their intervals as error-bar
plots, per target, opened in headless Chromium; and rebuilt from the saved JSON."""

import json

from headless import check_report

from tunesift.cli.main import main


def test_bench_smoke_report_opens_with_every_figure(tmp_path, shared_cache, capsys):
    out, report = tmp_path / "bench", tmp_path / "bench.html"
    rc = main(["bench", "--preset", "smoke", "--out", str(out), "--cache-dir", str(shared_cache),
               "--report", str(report), "-q"])  # fmt: skip
    assert rc == 0
    assert f"wrote {report}" in capsys.readouterr().out
    result = json.loads((out / "results.json").read_text())
    task = result["rows"][0]["task"]
    refs = {c["reference"] for c in result["comparisons"]}
    expected = {f"{task}-fast-perplexity"} | {f"{task}-fast-perplexity-minus-{r}" for r in refs}
    assert len(expected) == 3
    check_report(report, tmp_path / "browser", expected)
    html = report.read_text()
    assert f"Target {task}" in html and "oracle k=50" in html
    # the same page from the saved folder
    again = tmp_path / "again.html"
    assert main(["report", str(out), "--out", str(again)]) == 0
    assert "bench run, 3 figures" in capsys.readouterr().out
    assert again.read_bytes() == report.read_bytes()


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


SPACE = [
    f"the captain steers the ship past planet {i} and the crew watches the stars" for i in range(40)
]
LAW = [f"the court hears case {i} and the judge reads the statute to the jury" for i in range(40)]


def test_evaluate_report_opens_with_every_figure(tmp_path, capsys):
    train = _jsonl(tmp_path / "train.jsonl", [{"text": t, "label": "space"} for t in SPACE[:5]])
    test = _jsonl(tmp_path / "test.jsonl",
                  [{"text": t.replace("the captain", "a captain"), "label": "space"} for t in SPACE[20:30]])  # fmt: skip
    base = _jsonl(tmp_path / "pool.jsonl", [{"text": t} for t in SPACE[:20] + LAW[:20]])
    good = _jsonl(tmp_path / "good.jsonl", [{"text": t} for t in SPACE[30:40]])
    bad = _jsonl(tmp_path / "bad.jsonl", [{"text": t} for t in LAW[30:40]])
    out, report = tmp_path / "eval.json", tmp_path / "eval.html"
    rc = main(["evaluate", "--selection", f"good={good}", "--selection", f"bad={bad}",
               "--task-train", train, "--task-test", test, "--base", base, "--seeds", "0,1",
               "--out", str(out), "--report", str(report), "-q"])  # fmt: skip
    assert rc == 0
    check_report(report, tmp_path / "browser", {"evaluate-perplexity"})
    html = report.read_text()
    assert "good" in html and "no-pre-fine-tuning" in html
    again = tmp_path / "again.html"
    assert main(["report", str(out), "--out", str(again)]) == 0
    assert "evaluate run, 1 figures" in capsys.readouterr().out
    assert again.read_bytes() == report.read_bytes()
