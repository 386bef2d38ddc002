"""CoLoR-Filter (Brandfonbrener et al. 2024): planted target rows first, the score's formula, the
CLI. TinyLM with LoRA, tens of rows: seconds on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tinylm_losses import network_with, transcribed_loss

from tunesift.cli.main import main
from tunesift.errors import TunesiftError
from tunesift.methods import make_method
from tunesift.methods.base import PoolInfo

WORDS = "the cat sat on a mat and the dog ran in the sun with a red hat".split()
#: small, fast settings: a byte-level TinyLM drawn from the seed, LoRA on its attention
TINY = dict(model="tinylm", max_length=48, batch_size=8, lr=1e-2, lora_r=8, device="cpu", threads=1)


def _prose(rng: np.random.Generator, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(6, 10)))) for _ in range(n)]


def _sums(rng: np.random.Generator, n: int) -> list[str]:
    def one() -> str:
        a, b = rng.integers(10, 999, size=2)
        return f"{a}+{b}={a + b}; {b}*7={b * 7}; #{rng.integers(100, 999)}"

    return [one() for _ in range(n)]


@pytest.fixture(scope="module")
def mixture():
    """A pool of prose (target-like) and arithmetic rows, interleaved; a prose target."""
    rng = np.random.default_rng(0)
    prose, sums = _prose(rng, 24), _sums(rng, 24)
    pool = [t for pair in zip(prose, sums, strict=True) for t in pair]
    is_target_like = np.tile([True, False], 24)
    return pool, is_target_like, _prose(rng, 16)


def test_color_filter_ranks_target_like_rows_first(mixture):
    pool, like, target = mixture
    m = make_method("color-filter", prior_steps=10, steps=20, **TINY).fit(pool, target)
    scores = m.score(pool)
    order = m.order(scores, PoolInfo(size=len(pool)))
    top = order[: like.sum()]
    assert like[top].mean() >= 0.8, like[top].mean()
    # conditioning lowered the target's loss, and raised the loss of the off-target rows
    assert m.target_loss_[1] < m.target_loss_[0]
    assert scores[like].mean() > 0 > scores[~like].mean()
    # the official rule: the largest loss reductions first (a plain descending sort)
    assert order.tolist() == np.argsort(-scores, kind="stable").tolist()
    # seeded: a second fit gives the same scores, bit for bit
    again = make_method("color-filter", prior_steps=10, steps=20, **TINY).fit(pool, target)
    np.testing.assert_array_equal(again.score(pool), scores)


def test_color_filter_score_is_prior_loss_minus_conditional_loss(mixture):
    pool, _, target = mixture
    m = make_method("color-filter", prior_steps=3, steps=4, seed=5, **TINY).fit(pool, target)
    texts = [pool[0], pool[1], "", "x", "a much longer text " * 8, "é ü ß"]
    params = m.get_params()
    prior = network_with(m.prior_weights_, params)
    cond = network_with(m.conditional_weights_, params)
    expected = [
        transcribed_loss(prior, t, params["max_length"])
        - transcribed_loss(cond, t, params["max_length"])
        for t in texts
    ]
    np.testing.assert_allclose(m.score(texts), expected, rtol=0, atol=2e-5)
    assert m.score([""])[0] == 0.0
    # the fine-tunes moved the adapters, and the conditional starts from the prior
    assert not np.array_equal(m.prior_weights_, m.conditional_weights_)
    assert len(m.prior_losses_) == 3 and len(m.conditional_losses_) == 4


def test_color_filter_refuses_bad_parameters_and_inputs():
    with pytest.raises(TunesiftError, match="prior_steps") as info:
        make_method("color-filter", prior_steps=-1)
    assert info.value.param == "prior_steps"
    with pytest.raises(TunesiftError, match="max_length"):
        make_method("color-filter", max_length=1)
    with pytest.raises(TunesiftError, match="device"):
        make_method("color-filter", device="gpu")
    with pytest.raises(TunesiftError, match="target"):
        make_method("color-filter", **TINY).fit(["a b c"], [])
    with pytest.raises(TunesiftError, match="not a local model folder"):
        make_method("color-filter", model="/no/such/model", device="cpu").fit(["abc"], ["abc"])


def test_color_filter_through_select_and_compare(mixture, tmp_path, capsys):
    pool, like, target = mixture
    pool_path, target_path = tmp_path / "pool.jsonl", tmp_path / "target.jsonl"
    pool_path.write_text("".join(json.dumps({"text": t}) + "\n" for t in pool))
    target_path.write_text("".join(json.dumps({"text": t}) + "\n" for t in target))
    out = tmp_path / "sel.jsonl"
    # the run's device is select's own flag (--device), not a method parameter
    settings = {k: v for k, v in TINY.items() if k != "device"} | {"prior_steps": 10, "steps": 20}
    params = [a for k, v in settings.items() for a in ("--param", f"{k}={v}")]
    argv = ["select", "--pool", pool_path, "--target", target_path, "--budget", 12,
            "--method", "color-filter", *params, "--device", "cpu", "--out", out, "-q"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12 and like[[r["index"] for r in rows]].mean() >= 0.8
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["method"] == "color-filter"
    assert meta["params"]["model"] == "tinylm" and meta["params"]["steps"] == 20
    assert meta["diagnostics"]["target_loss_conditional"] < meta["diagnostics"]["target_loss_prior"]
    # compare runs it beside a feature method, on the same budget
    cparams = [a for k, v in settings.items() for a in ("--param", f"color-filter.{k}={v}")]
    argv = ["compare", "--pool", pool_path, "--target", target_path, "--budget", 12,
            "--methods", "color-filter,random", *cparams, "--device", "cpu", "--featurizer", "ngrams",
            "--cache-dir", tmp_path / "cache", "-q", "--save", tmp_path / "cmp.json"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "cmp.json").read_text())
    assert "color-filter" in json.dumps(saved)


def test_a_run_setting_given_as_a_method_parameter_names_its_flag(mixture, tmp_path, capsys):
    """``--param device=cpu`` once reached ``select`` twice (a TypeError traceback)."""
    pool, _, target = mixture
    pool_path, target_path = tmp_path / "pool.jsonl", tmp_path / "target.jsonl"
    pool_path.write_text("".join(json.dumps({"text": t}) + "\n" for t in pool))
    target_path.write_text("".join(json.dumps({"text": t}) + "\n" for t in target))
    for name, value in (("device", "cpu"), ("seed", 3)):
        argv = ["select", "--pool", pool_path, "--target", target_path, "--budget", 5,
                "--method", "color-filter", "--param", f"{name}={value}",
                "--out", tmp_path / "o.jsonl", "-q"]  # fmt: skip
        assert main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"--{name}" in err, err
