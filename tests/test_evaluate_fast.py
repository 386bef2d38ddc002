"""`tunesift evaluate` fast mode: the Lemma 1 n-gram view, the leakage guard, the report."""

import json
import re

import numpy as np
import pytest

from tunesift.cli.main import main
from tunesift.errors import TunesiftError
from tunesift.evaluate.fast import FastConfig, NgramLM, Vocabulary, evaluate_fast
from tunesift.evaluate.harness import BASELINE, check_leakage, evaluate
from tunesift.evaluate.task import LabeledTask

SPACE = [
    f"the ship {w} warp drive to the stars and the captain {v}"
    for v in "klmno"
    for w in "abcdefghij"
]
LAW = [
    f"the court {w} ruled the statute void and the judge {v}" for v in "klmno" for w in "abcdefghij"
]


def test_bigram_model_is_a_distribution_for_every_history():
    vocab = Vocabulary(SPACE + LAW)
    lm = NgramLM(vocab, SPACE[:7], FastConfig())
    everything = np.arange(len(vocab))
    for h in (0, 1, vocab.ids["the"], vocab.ids["court"]):
        total = lm.prob(np.full(len(vocab), h), everything).sum()
        assert total == pytest.approx(1.0, abs=1e-12)
    assert lm.unigram.sum() == pytest.approx(1.0, abs=1e-12)


def test_in_domain_selection_lowers_target_perplexity():
    base = SPACE[:20] + LAW[:20]
    test = [t.replace("the captain", "a captain") for t in SPACE[20:30]]
    none = evaluate_fast(None, base, test)
    good = evaluate_fast(SPACE[30:50], base, test)
    bad = evaluate_fast(LAW[30:50], base, test)
    assert good.perplexity < none.perplexity < bad.perplexity
    assert none.perplexity == none.perplexity_base and good.perplexity_base == none.perplexity


def test_same_inputs_give_the_same_numbers_exactly():
    """Issue 5, acceptance 3: fast mode is pure counting, so the numbers repeat bit for bit."""
    base, test = SPACE[:30] + LAW[:30], LAW[40:]
    a = evaluate_fast(LAW[30:40], base, test, FastConfig(order=2, k=0.3, mu=20, lam=0.4))
    b = evaluate_fast(list(LAW[30:40]), list(base), list(test), FastConfig(2, 0.3, 20, 0.4))
    assert a == b
    task = LabeledTask("law", LAW[:4], ["x"] * 4, LAW[40:], ["x"] * 10)
    r1 = evaluate({"s": LAW[30:40]}, task, base=base, seeds=[0, 1])
    r2 = evaluate({"s": LAW[30:40]}, task, base=base, seeds=[0, 1])
    assert [r.metrics for r in r1.rows] == [r.metrics for r in r2.rows]


def test_bad_fast_configs_are_one_line_errors():
    for cfg in (FastConfig(order=3), FastConfig(k=0), FastConfig(lam=1.0)):
        with pytest.raises(TunesiftError):
            evaluate_fast(None, SPACE, SPACE, cfg)
    with pytest.raises(TunesiftError, match="base corpus"):
        evaluate_fast(None, [], SPACE)


def test_leakage_guard_refuses_a_selection_holding_target_texts():
    task = LabeledTask("t", ["Train text one"], ["a"], ["The  TEST text"], ["a"])
    check_leakage("clean", ["something else"], task)
    with pytest.raises(TunesiftError, match="1 of the target's labeled texts .*from test"):
        check_leakage("leaky", ["the test text", "fine"], task)
    with pytest.raises(TunesiftError, match="from train"):
        evaluate({"leaky": ["train text ONE"]}, task, base=["x y"], seeds=[0])


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_evaluate_cli_reports_every_selection_beside_the_baseline(tmp_path, capsys):
    train = _jsonl(tmp_path / "train.jsonl", [{"text": t, "label": "space"} for t in SPACE[:5]])
    test = _jsonl(
        tmp_path / "test.jsonl",
        [{"text": t.replace("the captain", "a captain"), "label": "space"} for t in SPACE[20:30]],
    )
    base = _jsonl(tmp_path / "pool.jsonl", [{"text": t} for t in SPACE[:20] + LAW[:20]])
    good = _jsonl(tmp_path / "good.jsonl", [{"text": t} for t in SPACE[30:50]])
    bad = _jsonl(tmp_path / "bad.jsonl", [{"text": t} for t in LAW[30:50]])
    out = tmp_path / "report.json"
    rc = main([
        "evaluate", "--selection", f"good={good}", "--selection", f"bad={bad}",
        "--task-train", train, "--task-test", test, "--base", base, "--seeds", "0,1",
        "--out", str(out), "-q",
    ])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert BASELINE in printed and "good" in printed and "± 0" in printed
    report = json.loads(out.read_text())
    s = report["summary"]
    assert s["good"]["perplexity"]["mean"] < s[BASELINE]["perplexity"]["mean"]
    assert s[BASELINE]["perplexity"]["mean"] < s["bad"]["perplexity"]["mean"]
    assert report["config"]["fast"] == {"order": 2, "k": 0.1, "mu": 50.0, "lam": 0.5}
    assert report["seeds"] == [0, 1] and "platform" in report["environment"]
    assert report["environment"]["command"].startswith("tunesift evaluate")
    # a selection that holds a test text is refused with one line
    leak = _jsonl(
        tmp_path / "leak.jsonl", [{"text": SPACE[20].replace("the captain", "a captain")}]
    )
    rc = main(["evaluate", "--selection", f"leak={leak}", "--task-train", train,
               "--task-test", test, "--base", base, "-q"])  # fmt: skip
    assert rc == 2 and "target's labeled texts" in capsys.readouterr().err


def test_evaluate_is_a_documented_python_call():
    """``tunesift.evaluate.evaluate`` is ``tunesift evaluate`` from Python; every parameter of it
    is described in its docstring."""
    import inspect

    import tunesift.evaluate as ev

    assert ev.evaluate is evaluate
    doc = inspect.getdoc(ev.evaluate) or ""
    for name in inspect.signature(ev.evaluate).parameters:
        assert re.search(rf"^{name}\b|, {name}\b", doc, re.M), f"{name} is not documented"
    task = ev.LabeledTask("t", ["a b", "c d"], ["x", "y"], ["a b c", "d e"], ["x", "y"])
    report = ev.evaluate({"s": ["a b a b"]}, task, base=["c d e f"], seeds=[0])
    assert [r.selection for r in report.rows] == [ev.BASELINE, "s"]
