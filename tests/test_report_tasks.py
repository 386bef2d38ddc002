"""The tasks (GradEx) report (issue 16): estimated vs true fine-tuned loss on the validation
subsets with Spearman, the chosen tasks and the per-task coefficients, opened in headless
Chromium; built from the --out folder's selection.json and validation.json."""

import json

import numpy as np
from headless import check_report, open_report

from tunesift.cli.main import main


def _texts(word: str, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(word * int(k) for k in rng.integers(1, 4, size=6)) for _ in range(n)]


def test_tasks_report_after_select_and_validate(tmp_path, capsys):
    folder = tmp_path / "tasks"
    folder.mkdir()
    for name in ("ab", "xy", "qz", "mn"):
        (folder / f"{name}.jsonl").write_text(
            "".join(json.dumps({"text": t}) + "\n" for t in _texts(name, 8, 0))
        )
    target = tmp_path / "target.jsonl"
    target.write_text("".join(json.dumps({"text": t}) + "\n" for t in _texts("ab", 6, 1)))
    out = tmp_path / "out"
    common = ["--tasks", str(folder), "--target", str(target), "--target-test", str(target),
              "--projection-dim", "16", "--max-length", "32", "--meta-steps", "4",
              "--finetune-steps", "2", "--final-steps", "2", "--calibrate", "2", "--subsets",
              "20", "--threads", "1", "--out", str(out), "-q"]  # fmt: skip
    first = tmp_path / "select.html"
    assert main(["tasks", *common, "--k", "2", "--report", str(first)]) == 0
    assert f"wrote {first}" in capsys.readouterr().out
    # only the selection so far: the validation scatter says how to get it
    rendered = open_report(first, tmp_path / "browser1")
    assert rendered.missing == ["validation"]
    assert {"coefficients", "ensemble_scores"} <= set(rendered.figures)
    report = tmp_path / "tasks.html"
    assert main(["tasks", "validate", *common, "--validate-subsets", "4",
                 "--report", str(report)]) == 0  # fmt: skip
    check_report(report, tmp_path / "browser2",
                 {"validation", "coefficients", "ensemble_scores"})  # fmt: skip
    html = report.read_text()
    val = json.loads((out / "validation.json").read_text())["validation"]
    assert f"Spearman {val['spearman']:.3f}" in html
    chosen = json.loads((out / "selection.json").read_text())["selection"]["chosen"]
    assert len(chosen) == 2 and all(f'<td class="l">{t}</td><td>yes</td>' in html for t in chosen)
    again = tmp_path / "again.html"
    assert main(["report", str(out), "--out", str(again)]) == 0
    assert again.read_bytes() == report.read_bytes()
