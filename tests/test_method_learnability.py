"""Learnability (LoBaSS-style): planted learnable rows above noise, the score's formula, the CLI.
TinyLM with LoRA, tens of rows: seconds on a CPU."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
from tinylm_losses import network_with, transcribed_loss

from tunesift.cli.main import main
from tunesift.errors import TunesiftError
from tunesift.methods import make_method
from tunesift.methods.base import PoolInfo

TINY = dict(model="tinylm", max_length=48, batch_size=8, lr=1e-2, lora_r=8, device="cpu", threads=1)
NOISE_CHARS = string.ascii_letters + string.digits + string.punctuation


@pytest.fixture(scope="module")
def planted():
    """Repeated short motifs over five letters (learnable) and uniform random characters (noise,
    nothing to learn but their spread), interleaved."""
    rng = np.random.default_rng(0)
    motifs = ["".join(rng.choice(list("abcde"), size=int(rng.integers(2, 5)))) for _ in range(24)]
    patterns = [(m * 40)[:44] for m in motifs]
    noise = ["".join(rng.choice(list(NOISE_CHARS), size=44)) for _ in range(24)]
    pool = [t for pair in zip(patterns, noise, strict=True) for t in pair]
    return pool, np.tile([True, False], 24)


def test_learnability_ranks_learnable_rows_above_noise(planted):
    pool, learnable = planted
    for relative in (False, True):
        m = make_method("learnability", steps=20, relative=relative, **TINY).fit(pool, None)
        scores = m.score(pool)
        top = m.order(scores, PoolInfo(size=len(pool)))[: learnable.sum()]
        assert learnable[top].mean() >= 0.9, (relative, learnable[top].mean())
        assert np.median(scores[learnable]) > np.median(scores[~learnable])
    # the fine-tune lowered the training loss, and drew its rows from the pool
    assert m.train_losses_[-1] < m.train_losses_[0]
    assert len(m.fit_rows_) == len(pool) and (np.diff(m.fit_rows_) > 0).all()


def test_learnability_score_is_the_loss_before_minus_the_loss_after(planted):
    pool, _ = planted
    texts = [pool[0], pool[1], "", "z", "a much longer text " * 8]
    for relative in (False, True):
        m = make_method("learnability", steps=3, seed=2, relative=relative, **TINY)
        m.fit(pool, None)
        params = m.get_params()
        before = network_with(m.before_weights_, params)
        after = network_with(m.after_weights_, params)
        expected = []
        for t in texts:
            lb = transcribed_loss(before, t, params["max_length"])
            la = transcribed_loss(after, t, params["max_length"])
            expected.append(((lb - la) / lb if lb > 0 else 0.0) if relative else lb - la)
        np.testing.assert_allclose(m.score(texts), expected, rtol=0, atol=2e-5)
    # the model before is the one loaded: LoRA's B starts at zero, so the adapters do nothing
    fresh = network_with(m.before_weights_, params)
    base = network_with(np.zeros_like(m.before_weights_), params)
    assert transcribed_loss(fresh, pool[0], 48) == pytest.approx(
        transcribed_loss(base, pool[0], 48), abs=1e-9
    )


def test_learnability_refuses_bad_parameters_and_inputs():
    with pytest.raises(TunesiftError, match="relative") as info:
        make_method("learnability", relative="yes")
    assert info.value.param == "relative"
    with pytest.raises(TunesiftError, match="steps"):
        make_method("learnability", steps=-2)
    with pytest.raises(TunesiftError, match="lr"):
        make_method("learnability", lr=0)
    with pytest.raises(TunesiftError, match="pool"):
        make_method("learnability", **TINY).fit([], None)


def test_learnability_through_select_records_its_parameters(planted, tmp_path, capsys):
    pool, learnable = planted
    pool_path, target_path = tmp_path / "pool.jsonl", tmp_path / "target.jsonl"
    pool_path.write_text("".join(json.dumps({"text": t}) + "\n" for t in pool))
    target_path.write_text(json.dumps({"text": "anything"}) + "\n")
    out = tmp_path / "sel.jsonl"
    settings = {k: v for k, v in TINY.items() if k != "device"} | {"steps": 20}
    params = [a for k, v in settings.items() for a in ("--param", f"{k}={v}")]
    argv = ["select", "--pool", pool_path, "--target", target_path, "--budget", 10,
            "--method", "learnability", *params, "--device", "cpu", "--out", out, "-q"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 10 and learnable[[r["index"] for r in rows]].mean() >= 0.9
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["method"] == "learnability"
    assert meta["params"]["relative"] is False and meta["params"]["steps"] == 20
    assert meta["diagnostics"]["last_step_loss"] < meta["diagnostics"]["first_step_loss"]
