"""Encoder mode of ``tunesift evaluate``: masked-LM pre-fine-tuning, then a classifier.

Everything runs on the bundled all-MiniLM-L6-v2 at 32 tokens and a handful of steps, so the
whole file takes well under a minute on two CPU cores.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from tunesift.errors import TunesiftError
from tunesift.evaluate.encoder import (
    EncoderConfig,
    evaluate_encoder,
    finetune_classifier,
    load_mlm_model,
    mask_tokens,
    mlm_loss,
    pretrain_mlm,
    warm_head,
)
from tunesift.evaluate.task import LabeledTask

KITCHEN = {
    "subj": ["The chef", "My grandmother", "The baker", "Our cook", "The waiter", "A neighbour"],
    "verb": ["stirred", "roasted", "seasoned", "baked", "chopped", "simmered", "tasted", "served"],
    "obj": ["the onions", "a pot of soup", "fresh bread", "the garlic", "a lemon tart",
            "the tomato sauce", "a tray of cookies", "the roast chicken"],
    "tail": ["before dinner", "in the oven", "with olive oil and salt", "for the guests",
             "on a low flame", "until it smelled wonderful", "in a cast iron pan"],
}  # fmt: skip
SKY = {
    "subj": ["The astronomer", "A student", "The telescope", "The observatory", "Our probe",
             "The space agency"],
    "verb": ["observed", "tracked", "photographed", "measured", "detected", "mapped", "studied"],
    "obj": ["a distant galaxy", "the rings of Saturn", "a faint comet", "the moons of Jupiter",
            "a supernova remnant", "the orbit of Mars", "a cluster of stars"],
    "tail": ["through the night", "with an infrared camera", "from the mountain top",
             "after the eclipse", "beyond the asteroid belt", "in the southern sky"],
}  # fmt: skip


def planted(n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` sentences alternating between a kitchen and a night-sky topic, with their labels."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label, words = ("kitchen", KITCHEN) if i % 2 == 0 else ("sky", SKY)
        texts.append(" ".join(rng.choice(words[k]) for k in ("subj", "verb", "obj", "tail")) + ".")
        labels.append(label)
    return texts, labels


def small(**kw) -> EncoderConfig:
    base = {"max_length": 32, "mlm_batch_size": 8, "clf_batch_size": 16, "threads": 1,
            "mlm_head_steps": 4}  # fmt: skip
    return EncoderConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def task() -> LabeledTask:
    train, train_labels = planted(64, seed=0)
    test, test_labels = planted(64, seed=1)
    return LabeledTask("planted", train, train_labels, test, test_labels)


@pytest.fixture(scope="module")
def selection() -> list[str]:
    return planted(32, seed=2)[0]


def test_planted_task_well_above_chance(task):
    # measured: accuracy 1.0 after 4 steps (1 epoch) at lr 5e-5..2e-4
    r = evaluate_encoder(None, task, small(clf_epochs=1), seed=0)
    assert r.accuracy >= 0.9
    assert r.macro_f1 >= 0.9
    assert r.n_selected == 0 and r.mlm_steps == 0 and r.seconds_pretrain == 0.0
    assert r.clf_steps == 4
    assert r.config["model"] == "all-MiniLM-L6-v2"


def test_pretraining_lowers_mlm_loss_and_changes_weights(selection):
    cfg = small(mlm_epochs=2, mlm_lr=5e-4)
    before = load_mlm_model(cfg, seed=0)
    loss_before = mlm_loss(before, selection, cfg, seed=123)
    res = pretrain_mlm(selection, cfg, seed=0)
    assert res is not None and res.n_steps == 8 and len(res.losses) == 8
    loss_after = mlm_loss(res.model, selection, cfg, seed=123)
    # measured: 10.67 -> 5.25 (lr 5e-4, 8 steps of 8 texts)
    assert loss_after < loss_before - 2.0, (loss_before, loss_after)
    w0 = before.base_model.encoder.layer[0].attention.self.query.weight
    w1 = res.model.base_model.encoder.layer[0].attention.self.query.weight
    assert not torch.equal(w0, w1)
    # the decoder stays tied to the (trained) input embeddings
    out, emb = res.model.get_output_embeddings(), res.model.get_input_embeddings()
    assert out.weight is emb.weight
    assert len(res.head_losses) == 4


def test_head_warm_up_leaves_the_encoder_alone(selection):
    # MiniLM has no masked-LM head: the new one trains alone first, the encoder frozen
    cfg = small(mlm_head_steps=3, mlm_max_steps=0)
    fresh = load_mlm_model(cfg, seed=0)
    res = pretrain_mlm(selection, cfg, seed=0)
    assert res is not None and res.n_steps == 0 and len(res.head_losses) == 3
    new, old = res.model.state_dict(), fresh.state_dict()
    changed = {k for k in old if not torch.equal(old[k], new[k])}
    assert changed and all(k.startswith("cls.") for k in changed), changed
    assert all(p.requires_grad for p in res.model.parameters())


def test_a_shared_warmed_head_is_the_head_each_run_would_warm(selection):
    # warm_head on the selection then head= is the same model as warming inside pretrain_mlm
    cfg = small(mlm_head_steps=3, mlm_max_steps=2)
    head = warm_head(selection, cfg, seed=0)
    assert head and all(k.startswith("cls.") for k in head)
    fresh = load_mlm_model(cfg, seed=0)
    assert any(not torch.equal(v, fresh.state_dict()[k]) for k, v in head.items())
    inline = pretrain_mlm(selection, cfg, seed=0)
    shared = pretrain_mlm(selection, cfg, seed=0, head=head)
    assert inline is not None and shared is not None and shared.head_losses == []
    assert inline.losses == shared.losses
    a, b = inline.model.state_dict(), shared.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(TunesiftError, match="same model"):
        pretrain_mlm(selection, cfg, seed=0, head={"cls.other": torch.zeros(1)})


def test_same_seed_same_numbers(task, selection):
    cfg = small(mlm_max_steps=2, clf_epochs=1, clf_batch_size=8)
    task = LabeledTask("tiny", task.train_texts[:16], task.train_labels[:16],
                       task.test_texts[:16], task.test_labels[:16])  # fmt: skip
    a = pretrain_mlm(selection[:16], cfg, seed=3)
    b = pretrain_mlm(selection[:16], cfg, seed=3)
    assert a is not None and b is not None
    assert a.losses == b.losses
    ra = finetune_classifier(a, task, cfg, seed=3)
    rb = finetune_classifier(b, task, cfg, seed=3)
    assert np.array_equal(ra["logits"], rb["logits"])
    assert (ra["accuracy"], ra["macro_f1"]) == (rb["accuracy"], rb["macro_f1"])
    # a state dict of the same encoder gives the same classifier; the input is not modified
    state = {k: v.clone() for k, v in a.model.base_model.state_dict().items()}
    rs = finetune_classifier(state, task, cfg, seed=3)
    assert np.array_equal(ra["logits"], rs["logits"])
    assert all(torch.equal(v, a.model.base_model.state_dict()[k]) for k, v in state.items())
    # another seed fine-tunes differently
    rc = finetune_classifier(a, task, cfg, seed=4)
    assert not np.array_equal(ra["logits"], rc["logits"])


def test_no_selection_skips_pretraining(task):
    cfg = small()
    assert pretrain_mlm(None, cfg, seed=0) is None
    assert pretrain_mlm([], cfg, seed=0) is None


def test_masking_is_seeded_and_bert_like():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (64, 128), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones_like(ids)
    mask[:, 100:] = 0

    def draw(seed):
        return mask_tokens(ids, mask, [0, 100, 101, 102, 103], 103, 30522, 0.15,
                           torch.Generator().manual_seed(seed))  # fmt: skip

    out, labels = draw(1)
    out2, labels2 = draw(1)
    assert torch.equal(out, out2) and torch.equal(labels, labels2)
    assert not torch.equal(draw(2)[1], labels)
    chosen = labels != -100
    assert not chosen[:, 0].any() and not chosen[:, 100:].any()  # no specials, no padding
    assert torch.equal(labels[chosen], ids[chosen])
    assert abs(chosen.sum().item() / (64 * 98) - 0.15) < 0.02
    masked = (out == 103) & chosen
    kept = (out == ids) & chosen
    assert abs(masked.sum().item() / chosen.sum().item() - 0.8) < 0.04
    assert abs(kept.sum().item() / chosen.sum().item() - 0.1) < 0.04
    assert torch.equal(out[~chosen], ids[~chosen])
    # a batch too short for 15% still predicts one token
    one = torch.tensor([[101, 1500, 102, 0]])
    _, one_labels = mask_tokens(one, torch.tensor([[1, 1, 1, 0]]), [0, 101, 102], 103, 30522,
                                0.01, torch.Generator().manual_seed(0))  # fmt: skip
    assert one_labels.tolist() == [[-100, 1500, -100, -100]]


def test_bad_input_is_a_one_line_error(task):
    with pytest.raises(TunesiftError, match="mlm_probability"):
        evaluate_encoder(None, task, EncoderConfig(mlm_probability=0.0))
    with pytest.raises(TunesiftError, match="pooling"):
        EncoderConfig(pooling="max").validate()
    with pytest.raises(TunesiftError, match="not a local model folder"):
        EncoderConfig(model="/nonexistent/model").model_path()
    one_label = LabeledTask("one", ["a b", "c d"], ["x", "x"], ["e f"], ["x"])
    with pytest.raises(TunesiftError, match="two labels"):
        evaluate_encoder(None, one_label, small())
    with pytest.raises(TunesiftError, match="any token"):
        pretrain_mlm(["", "   "], small(), seed=0)


def test_config_is_recorded_as_json():
    d = EncoderConfig().to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["model"] == "all-MiniLM-L6-v2" and d["max_length"] == 128
    assert d["mlm_probability"] == 0.15 and d["warmup_ratio"] == 0.06
