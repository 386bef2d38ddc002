"""Paired difference statistics: planted effects are found, no effect covers 0 about 95%."""

import math

import numpy as np
import pytest

from tunesift.errors import TunesiftError
from tunesift.evaluate.stats import (
    Interval,
    macro_f1_difference,
    mean_difference,
    perplexity_difference,
    t_interval,
)


def _accuracy_runs(rng, p_ref, shift, seeds=3, items=200, seed_sd=0.0):
    """Per-seed 0/1 correctness of a reference and a method whose accuracy is ``shift`` higher,
    on the same test items under every seed (an item's difficulty is shared by both and by every
    seed, as in bench's fixed test split); ``seed_sd`` adds a per-seed effect (the selection)."""
    ease = rng.uniform(-1.5, 1.5, items)
    base = 1 / (1 + np.exp(-(np.log(p_ref / (1 - p_ref)) + ease)))
    method, ref = [], []
    for _ in range(seeds):
        jitter = rng.normal(0, seed_sd)
        ref.append((rng.uniform(size=items) < base).astype(float))
        method.append(
            (rng.uniform(size=items) < np.clip(base + shift + jitter, 0, 1)).astype(float)
        )
    return method, ref


def test_planted_accuracy_shift_is_detected_and_estimated():
    rng = np.random.default_rng(1)
    method, ref = _accuracy_runs(rng, 0.6, 0.10, seeds=3, items=400)
    iv = mean_difference(method, ref, n_boot=1000, seed=0)
    assert iv.significant and iv.low > 0
    assert 0.07 < iv.estimate < 0.13 and iv.low < 0.10 < iv.high
    assert iv.kind == "bootstrap" and iv.n_seeds == 3 and iv.n_items == 400


def test_no_shift_covers_zero_about_95_percent():
    """200 simulated benches with no effect: the 95% interval holds 0 in 93-100% of them.
    Measured: 99% without, 98% with a seed effect (sd 0.05) — the two-level bootstrap counts the
    seed x item noise at both levels, so it errs towards "not significant"."""
    rng = np.random.default_rng(7)
    covered = 0
    repeats = 200
    for r in range(repeats):
        method, ref = _accuracy_runs(rng, 0.7, 0.0, seeds=3, items=100, seed_sd=0.05)
        covered += not mean_difference(method, ref, n_boot=300, seed=r).significant
    assert 0.93 <= covered / repeats < 1.0


def test_seed_variance_widens_the_interval():
    """Selection variability across seeds (a seed-level jitter) must widen the interval."""
    a, b = _accuracy_runs(np.random.default_rng(3), 0.6, 0.0, seeds=5, items=200, seed_sd=0.0)
    c, d = _accuracy_runs(np.random.default_rng(3), 0.6, 0.0, seeds=5, items=200, seed_sd=0.2)
    quiet = mean_difference(a, b, n_boot=800)
    noisy = mean_difference(c, d, n_boot=800)
    assert noisy.half_width > 1.5 * quiet.half_width


def _nll_runs(rng, shift_nats, seeds=3, items=150):
    """Per-item summed NLL and token counts; the method's per-token loss is lower by shift."""
    mn, mt, rn, rt = [], [], [], []
    for _ in range(seeds):
        tokens = rng.integers(5, 40, items).astype(float)
        hardness = rng.normal(4.6, 0.5, items)  # ~ per-token NLL near log(100)
        ref = hardness * tokens + rng.normal(0, 0.3, items) * np.sqrt(tokens)
        meth = (hardness - shift_nats) * tokens + rng.normal(0, 0.3, items) * np.sqrt(tokens)
        mn.append(meth), mt.append(tokens), rn.append(ref), rt.append(tokens)
    return mn, mt, rn, rt


def test_planted_perplexity_drop_is_detected_as_a_ratio_statistic():
    rng = np.random.default_rng(2)
    mn, mt, rn, rt = _nll_runs(rng, 0.03)  # exp(-0.03): ~3% lower perplexity
    d = perplexity_difference(mn, mt, rn, rt, n_boot=1000)
    assert d.absolute.significant and d.absolute.high < 0
    assert d.percent.significant and -4.0 < d.percent.estimate < -2.0
    # the point estimate is the ratio statistic on all items, not a mean of per-item values
    ref0 = math.exp(sum(rn[0]) / sum(rt[0]))
    refs = [math.exp(sum(n) / sum(t)) for n, t in zip(rn, rt, strict=True)]
    meths = [math.exp(sum(n) / sum(t)) for n, t in zip(mn, mt, strict=True)]
    assert d.reference == pytest.approx(np.mean(refs))
    assert d.absolute.estimate == pytest.approx(np.mean(meths) - np.mean(refs))
    assert ref0 > 50


def test_no_perplexity_shift_covers_zero():
    rng = np.random.default_rng(11)
    covered = sum(
        not perplexity_difference(
            *_nll_runs(rng, 0.0, items=80), n_boot=300, seed=r
        ).percent.significant
        for r in range(60)
    )
    assert covered >= 54  # >= 90% of 60


def test_t_interval_over_seeds():
    iv = t_interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(0.975, 2) = 4.303: half-width 4.303 / sqrt(3)
    assert iv.estimate == 2.0 and iv.half_width == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert iv.kind == "t" and not iv.significant
    assert t_interval([2.0, 2.1, 1.9, 2.05]).significant
    one = t_interval([0.5])
    assert math.isnan(one.low) and not one.significant and one.text() == "+0.500 [n/a]"


def test_interval_text_marks_significance():
    assert Interval(0.1, 0.05, 0.15, "bootstrap", 3).text(2) == "+0.10 [+0.05, +0.15]*"
    assert Interval(0.1, -0.05, 0.25, "bootstrap", 3).text(2) == "+0.10 [-0.05, +0.25]"


def test_misaligned_items_are_refused():
    with pytest.raises(TunesiftError, match="seeds for the method"):
        mean_difference([[1, 0]], [[1, 0], [0, 1]])
    with pytest.raises(TunesiftError, match="differ in length"):
        perplexity_difference([[1.0, 2.0]], [[1, 2]], [[1.0]], [[1]])


def test_macro_f1_difference_matches_sklearn_and_finds_a_planted_gain():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(5)
    gold = np.repeat(np.arange(4), 100)
    better, worse = [], []
    for _ in range(3):
        better.append(np.where(rng.uniform(size=400) < 0.8, gold, rng.integers(0, 4, 400)))
        worse.append(np.where(rng.uniform(size=400) < 0.6, gold, rng.integers(0, 4, 400)))
    iv = macro_f1_difference(better, worse, gold, n_boot=500)
    sk = np.mean([f1_score(gold, b, average="macro") - f1_score(gold, w, average="macro")
                  for b, w in zip(better, worse, strict=True)])  # fmt: skip
    assert iv.estimate == pytest.approx(sk, abs=1e-12)
    assert iv.significant and iv.low > 0.05
    # a label nobody predicts and no gold item holds does not count (sklearn's rule)
    skewed = [np.zeros(400, int)] * 2
    assert macro_f1_difference(skewed, skewed, gold, n_boot=50).estimate == 0.0


def test_seeds_held_fixed_resample_the_items_only():
    """``resample_seeds=False``: the items' part of the interval, which more seeds cannot narrow."""
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 2, size=(1, 300)).repeat(4, axis=0)
    shifts = [0.0, 0.1, -0.1, 0.2]  # seeds that disagree
    method = [np.where(rng.random(300) < 0.5 + s, 1, r) for s, r in zip(shifts, ref, strict=True)]
    both = mean_difference(method, ref)
    items = mean_difference(method, ref, resample_seeds=False)
    assert items.estimate == both.estimate
    assert items.high - items.low < both.high - both.low
    same = [method[0]] * 4  # identical seeds: holding them fixed changes nothing
    a = mean_difference(same, ref, resample_seeds=False)
    b = mean_difference(same, ref)
    assert (a.low, a.high) == pytest.approx((b.low, b.high))
