"""`tunesift bench`: labeled targets from the real corpora, the grid, and the leakage guard."""

import csv
import json
from collections import Counter

import pytest

from tunesift.cli.main import main
from tunesift.corpora import build as corpora_build
from tunesift.evaluate.bench import PRESETS, BenchRow, build_pool, build_task, paired_table
from tunesift.evaluate.harness import BASELINE

pytestmark = pytest.mark.skipif(
    not corpora_build.sources_available(["fortunes", "gcide", "debian", "foldoc"]),
    reason="Debian corpora not installed (run scripts/setup.sh)",
)


def _fold(t):
    return " ".join(t.lower().split())


def test_tasks_are_stratified_seeded_and_never_in_the_pool():
    """Issue 5: a target's test items and labeled training items are never in the pool."""
    spec = PRESETS["cpu"]
    tasks = [build_task(spec, t) for t in spec.tasks]
    assert len(tasks) >= 4
    for task in tasks:
        counts = Counter(task.train_labels)
        assert len(counts) == 4 and set(counts.values()) == {spec.train_per_label}
        assert set(Counter(task.test_labels).values()) == {spec.test_per_label}
        assert not {_fold(t) for t in task.train_texts} & {_fold(t) for t in task.test_texts}
    again = build_task(spec, spec.tasks[0])
    assert again.train_texts == tasks[0].train_texts
    small = type(spec)(**{**spec.__dict__, "pool_per_source": 300})
    pool = build_pool(small, tasks)
    pool_texts = {_fold(r["text"]) for r in pool}
    for task in tasks:
        assert not pool_texts & {_fold(t) for t in task.train_texts + task.test_texts}
    # the pool still holds other texts of the tasks' sources: the in-domain data to find
    assert {r["source"] for r in pool} >= {"fortunes", "gcide", "debian", "foldoc"}


def test_bench_smoke_preset_end_to_end(tmp_path, shared_cache, capsys):
    out = tmp_path / "bench"
    rc = main(["bench", "--preset", "smoke", "--out", str(out), "--cache-dir", str(shared_cache),
               "-q"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| fortunes-3 | no-pre-fine-tuning | - |" in printed
    result = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in result["rows"]} == {"no-pre-fine-tuning", "dsir", "random"}
    assert result["hyperparameters"]["fast"]["lam"] == 0.5
    assert "platform" in result["environment"] and result["environment"]["finished"]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 3 and all(float(r["value"]) > 1 for r in rows)
    assert (out / "fortunes-3" / "train.jsonl").exists()


def test_bench_restricts_a_preset_and_rejects_unknown_names(capsys):
    from tunesift.evaluate.bench import restrict

    one = restrict(PRESETS["cpu"], tasks=["foldoc"], methods=["random"], modes=["fast"])
    assert [t.source for t in one.tasks] == ["foldoc"] and one.methods == ("random",)
    assert one.budgets == PRESETS["cpu"].budgets
    for flag, value, message in (("--tasks", "nope", "no task 'nope'"),
                                 ("--methods", "nope", "unknown method"),
                                 ("--modes", "decoder", "unknown mode")):  # fmt: skip
        assert main(["bench", "--preset", "cpu", flag, value, "-q"]) == 2
        assert message in capsys.readouterr().err


def test_paired_table_differences_by_seed():
    rows = [BenchRow("t", BASELINE, None, s, "encoder", {"accuracy": a}, 0.0, 0.0)
            for s, a in ((0, 0.5), (1, 0.7))]  # fmt: skip
    rows += [BenchRow("t", "gotd", 100, s, "encoder", {"accuracy": a}, 0.0, 0.0)
             for s, a in ((0, 0.6), (1, 0.6))]  # fmt: skip
    rows += [BenchRow("t", BASELINE, None, 0, "fast", {"perplexity": 100.0}, 0.0, 0.0),
             BenchRow("t", "gotd", 100, 0, "fast", {"perplexity": 80.0}, 0.0, 0.0)]  # fmt: skip
    table = paired_table(rows)
    line = next(x for x in table.splitlines() if x.startswith("| t | gotd"))
    # +0.1 and -0.1: mean 0, one seed of two better; perplexity lower is better
    assert "| +0.000 ± 0.141 (1/2) |" in line
    assert "-20.0 ± 0.0 (1/1)" in line
