"""Downstream accuracy in causal mode: the frozen-body linear probe and the per-item outputs.

The probe's statistics run on planted features (numpy only, milliseconds); the pooling, the
single forward pass and ``evaluate_causal``'s per-item outputs run on the tiny random Llama of
``conftest.tiny_model`` (2 layers, 32 wide, SmolLM2's tokenizer), a second or two each.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tunesift.errors import TunesiftError
from tunesift.evaluate.causal import (
    CausalConfig,
    evaluate_causal,
    load_causal_model,
    load_causal_tokenizer,
    score_task,
)
from tunesift.evaluate.downstream import fit_probe, forward_texts, text_features
from tunesift.evaluate.task import LabeledTask

KITCHEN = [
    "The chef stirred the onions in a cast iron pan.",
    "My grandmother baked fresh bread and a lemon tart for dinner.",
    "Season the tomato sauce with olive oil, garlic and salt.",
    "Roast the chicken in the oven until the skin is golden.",
    "Whisk the eggs with sugar, then fold in the flour.",
]
SKY = [
    "The astronomer observed a distant galaxy through the telescope.",
    "The probe photographed the rings of Saturn and the moons of Jupiter.",
    "A faint comet crossed the southern sky after the eclipse.",
    "The observatory measured the orbit of Mars with an infrared camera.",
    "Stars.",
]


@pytest.fixture(scope="module")
def task() -> LabeledTask:
    # 3 train texts per label (so a 3-fold CV picks C), 2 + 2 test texts
    return LabeledTask(
        "planted", KITCHEN[:3] + SKY[:3], ["cooking"] * 3 + ["astronomy"] * 3,
        KITCHEN[3:] + SKY[3:], ["cooking"] * 2 + ["astronomy"] * 2,
    )  # fmt: skip


def planted(n_per: int, seed: int, d: int = 20, k: int = 4, shift: float = 4.0):
    """``k`` Gaussian classes in ``d`` dims, class ``j`` centred at ``shift * e_j`` (+ scale)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per)
    x = rng.normal(size=(len(y), d))
    x[np.arange(len(y)), y] += shift
    x[:, -1] = x[:, -1] * 1000.0 + 5000.0  # a noise dimension on another scale: standardized away
    return x, y


# ---------------------------------------------------------------------------------- the probe


def test_probe_separates_planted_classes():
    xtr, ytr = planted(64, seed=0)
    xte, yte = planted(100, seed=1)
    fit = fit_probe(xtr, ytr, xte)
    acc = float((fit.pred == yte).mean())
    # measured: 0.9875 (C = 0.01 chosen by 5-fold CV); chance is 0.25
    assert acc >= 0.97
    assert fit.folds == 5 and set(fit.cv_accuracy) == {"0.01", "0.1", "1", "10", "100"}
    assert fit.c in (0.01, 0.1, 1.0, 10.0, 100.0)
    assert max(fit.cv_accuracy.values()) == fit.cv_accuracy[f"{fit.c:g}"]


def test_probe_is_deterministic_and_a_fixed_c_skips_the_search():
    xtr, ytr = planted(16, seed=2, shift=1.0)
    xte, _ = planted(30, seed=3, shift=1.0)
    a, b = fit_probe(xtr, ytr, xte), fit_probe(xtr, ytr, xte)
    assert np.array_equal(a.pred, b.pred) and a.c == b.c and a.cv_accuracy == b.cv_accuracy
    fixed = fit_probe(xtr, ytr, xte, c=0.5)
    assert fixed.c == 0.5 and fixed.cv_accuracy == {} and fixed.folds == 0


def test_probe_falls_back_to_c_one_when_a_label_has_one_train_text():
    x = np.array([[0.0, 1.0], [1.0, 0.0], [1.1, 0.1], [0.9, -0.1]])
    fit = fit_probe(x, [0, 1, 1, 1], np.array([[0.0, 1.2], [1.0, 0.0]]))
    assert fit.c == 1.0 and fit.folds == 0
    assert list(fit.pred) == [0, 1]


def test_probe_rejects_bad_input():
    x, y = planted(4, seed=0)
    with pytest.raises(TunesiftError, match="at least two labels"):
        fit_probe(x, np.zeros(len(x), dtype=int), x)
    with pytest.raises(TunesiftError, match="disagree"):
        fit_probe(x, y, x[:, :3])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(TunesiftError, match="NaN"):
        fit_probe(bad, y, x)
    with pytest.raises(TunesiftError, match="probe_c must be positive"):
        fit_probe(x, y, x, c=0.0)


# ------------------------------------------------------------------- pooling and the one pass


def test_pooled_states_ignore_padding_and_match_one_text_at_a_time(tiny_causal):
    """Masked mean of the last hidden state: batching with pads changes nothing but rounding."""
    cfg = tiny_causal()
    tok = load_causal_tokenizer(cfg)
    model = load_causal_model(cfg)
    texts = [KITCHEN[1], SKY[4], KITCHEN[0]]  # long, very short, medium: pads in the batch
    cpu = torch.device("cpu")
    batched = text_features(model, tok, texts, 32, 8, cpu)
    assert batched.shape == (3, 32) and batched.dtype == np.float64
    for i, text in enumerate(texts):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        want = out.hidden_states[-1][0].double().mean(dim=0).numpy()
        np.testing.assert_allclose(batched[i], want, rtol=1e-5, atol=1e-6)


def test_one_pass_gives_nll_and_features_and_the_suffix_changes_neither(tiny_causal):
    cfg = tiny_causal()
    tok = load_causal_tokenizer(cfg)
    model = load_causal_model(cfg)
    cpu = torch.device("cpu")
    rows = [tok(t, add_special_tokens=False)["input_ids"] for t in KITCHEN[:3]]
    suffix = tok("\nTopic:", add_special_tokens=False)["input_ids"]
    plain = forward_texts(model, rows, [len(r) for r in rows], tok.pad_token_id, 2, cpu)
    with_suffix = forward_texts(
        model, [r + suffix for r in rows], [len(r) for r in rows], tok.pad_token_id, 2, cpu,
        last_ids=[5, 7],
    )  # fmt: skip
    assert plain.tokens == [len(r) - 1 for r in rows] == with_suffix.tokens
    np.testing.assert_allclose(plain.nll, with_suffix.nll, rtol=1e-6)
    np.testing.assert_allclose(plain.features, with_suffix.features, rtol=1e-5, atol=1e-6)
    assert plain.last_logp is None and with_suffix.last_logp.shape == (3, 2)
    for i, r in enumerate(rows):  # a text's NLL by hand, one text per forward
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([r])).logits[0].double(), -1)
        want = -sum(float(logp[k, t]) for k, t in enumerate(r[1:]))
        assert plain.nll[i] == pytest.approx(want, rel=1e-5)


# ------------------------------------------------------------------ evaluate_causal, per item


def test_per_item_outputs_reproduce_the_reported_perplexity_exactly(tiny_causal, task):
    cfg = tiny_causal(max_steps=2)
    r = evaluate_causal(KITCHEN + SKY, task, cfg, seed=0)
    items = r.per_item
    n = len(task.test_texts)
    assert {k: len(v) for k, v in items.items()} == {
        "test_nll": n, "test_tokens": n, "correct": n, "pred": n,
    }  # fmt: skip
    assert r.perplexity == math.exp(sum(items["test_nll"]) / sum(items["test_tokens"]))
    assert sum(items["test_tokens"]) == r.test_tokens
    y = [task.labels.index(lab) for lab in task.test_labels]
    assert items["correct"] == [int(p == t) for p, t in zip(items["pred"], y, strict=True)]
    assert r.accuracy == sum(items["correct"]) / n and r.macro_f1 is not None
    assert r.extra["probe"]["folds"] == 3 and r.extra["probe"]["train_texts"] == 6
    assert r.mc_accuracy is not None  # zero-shot stays on by default
    d = r.to_dict()
    assert d["per_item"] == items and d["accuracy"] == r.accuracy


def test_same_seed_same_per_item_and_zero_shot_off_keeps_the_rest(tiny_causal, task):
    cfg = tiny_causal(max_steps=2)
    a = evaluate_causal(KITCHEN + SKY, task, cfg, seed=3)
    b = evaluate_causal(KITCHEN + SKY, task, cfg, seed=3)
    assert a.per_item == b.per_item and a.accuracy == b.accuracy and a.perplexity == b.perplexity
    off = evaluate_causal(KITCHEN + SKY, task, tiny_causal(max_steps=2, zero_shot=False), 3)
    assert off.mc_accuracy is None and off.mc_macro_f1 is None and off.mc_accuracy_pmi is None
    assert off.perplexity == pytest.approx(a.perplexity, rel=1e-6)
    assert off.per_item["test_tokens"] == a.per_item["test_tokens"]
    assert off.per_item["pred"] == a.per_item["pred"]
    assert off.config["zero_shot"] is False and off.config["downstream"] == "probe"


def test_the_baseline_gets_a_probe_too_and_downstream_none_skips_it(tiny_causal, task):
    base = evaluate_causal(None, task, tiny_causal(probe_c=1.0), seed=0)
    assert base.accuracy is not None and base.extra["probe"]["c"] == 1.0
    assert base.extra["probe"]["cv_accuracy"] == {}
    skip = evaluate_causal(None, task, tiny_causal(downstream="none"), seed=0)
    assert skip.accuracy is None and skip.macro_f1 is None and "probe" not in skip.extra
    assert set(skip.per_item) == {"test_nll", "test_tokens"}
    assert skip.perplexity == base.perplexity


def test_downstream_settings_are_checked(tiny_causal):
    with pytest.raises(TunesiftError, match="'finetune' is not built"):
        CausalConfig(downstream="finetune").validate()
    with pytest.raises(TunesiftError, match="probe_c must be positive"):
        CausalConfig(probe_c=-1.0).validate()
    no_train = LabeledTask("t", [], [], KITCHEN[:2] + SKY[:2], ["a", "a", "b", "b"])
    with pytest.raises(TunesiftError, match="labeled train texts of at least two labels"):
        evaluate_causal(None, no_train, tiny_causal())
    r = evaluate_causal(None, no_train, tiny_causal(downstream="none"), seed=0)
    assert r.accuracy is None and r.perplexity > 0


def test_score_task_keeps_its_zero_shot_outputs_and_adds_per_text_terms(tiny_causal):
    cfg = tiny_causal(eval_batch_size=2)
    tok = load_causal_tokenizer(cfg)
    s = score_task(load_causal_model(cfg), tok, KITCHEN[:3], ["a", "b"], cfg, torch.device("cpu"))
    assert s["nll"] == sum(s["nll_per_text"]) and s["tokens"] == sum(s["tokens_per_text"])
    assert s["scores"].shape == (3, 2) and s["features"] is None
