"""DsDm (Engstrom et al. 2024): a planted mixture it must sort, and its score against TRAK's estimator.

The planted test runs the whole method (LoRA warm-up, per-token log-odds gradients at every
checkpoint, projection, kernel inverse, out-to-loss weights) on a byte-level TinyLM; the formula
test writes the estimator out by hand, loop by loop, on fixed gradients and weights, and compares
it with ``dsdm_scores``, which chains the pieces ``DsDm.fit`` chains. Sign convention: a score
is the predicted *decrease* of the target's loss (TRAK's attribution to the target's log-odds),
so rows predicted to lower the target loss score above 0 and come first.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from tunesift.errors import NotFittedError, TunesiftError
from tunesift.methods import make_method
from tunesift.methods.dsdm import datamodel_direction, dsdm_scores
from tunesift.models.lora import LoRASpec
from tunesift.models.per_example_grads import load_scoring_lm, log_odds_gradients

#: a tiny configuration: TinyLM, a few warm-up steps, a small projection
TINY = dict(
    model="tinylm", warmup_fraction=0.25, epochs=2, lr=1e-3, batch_size=4,
    projection_dim=32, max_length=32, device="cpu", threads=1,
)  # fmt: skip


def _skewed(rng: np.random.Generator, main: str, other: str, n: int) -> list[str]:
    """Rows of 20-29 letters, each ``main`` with probability 0.95, else ``other``."""
    return [
        "".join(np.where(rng.random(int(rng.integers(20, 30))) < 0.95, main, other))
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def mixture():
    """10 rows like the target (mostly 'a'), 10 that conflict with it (mostly 'b': after an
    'a' they teach 'b' where the target has 'a'), 10 even mixes; the target is mostly 'a'."""
    rng = np.random.default_rng(3)
    texts = (
        _skewed(rng, "a", "b", 10)
        + _skewed(rng, "b", "a", 10)
        + ["".join(rng.choice(list("ab"), size=int(rng.integers(20, 30)))) for _ in range(10)]
    )
    kind = np.repeat([0, 1, 2], 10)  # 0 like the target, 1 conflicting, 2 mixed
    perm = rng.permutation(len(texts))
    return [texts[i] for i in perm], kind[perm], _skewed(rng, "a", "b", 6)


def test_dsdm_ranks_target_like_rows_first_and_conflicting_rows_last(mixture):
    """Once the warm-up has learned the pool's two letters, a row of mostly 'b' moves the
    model's mass from 'a' to 'b': the datamodel predicts it raises the target's loss (score < 0)
    and ranks it last; the rows like the target are predicted to lower it and rank first.
    30 rows against 64 projected dimensions: the kernel has rank 30, so the ridge is the kernel's
    mean eigenvalue (TRAK assumes many more rows than dimensions)."""
    pool, kind, target = mixture
    params = dict(
        model="tinylm", warmup_fraction=1.0, epochs=4, lr=3e-2, batch_size=4, lora_r=16,
        lora_alpha=64, projection_dim=64, lambda_reg=1.0, max_length=48, seed=3, device="cpu",
        threads=1,
    )  # fmt: skip
    m = make_method("dsdm", **params).fit(pool, target)
    scores = m.score(pool)
    losses = m.warmup_losses_[0]
    assert losses[-1] < losses[0] - 1.0, losses  # the model learned the letters
    order = np.argsort(-scores, kind="stable")
    assert (kind[order[:10]] == 0).all(), kind[order].tolist()
    assert (kind[order[-10:]] == 1).all(), kind[order].tolist()
    assert (scores[kind == 0] > 0).all() and (scores[kind == 1] < 0).all()
    # four checkpoints of one model, each with its own ridge
    assert len(m.weights_) == 4 and m.checkpoint_models_.tolist() == [0, 0, 0, 0]
    assert (m.ridges_ > 0).all()


def test_dsdm_is_deterministic_and_seeded(mixture):
    pool, _, target = mixture
    a = make_method("dsdm", seed=1, **TINY).fit(pool, target).score(pool)
    b = make_method("dsdm", seed=1, **TINY).fit(pool, target).score(pool)
    assert a.tobytes() == b.tobytes()
    assert np.argsort(-a, kind="stable").tobytes() == np.argsort(-b, kind="stable").tobytes()
    c = make_method("dsdm", seed=2, **TINY).fit(pool, target).score(pool)
    assert c.tobytes() != a.tobytes()


def test_dsdm_scores_new_rows_as_fit_scored_its_own(mixture):
    """``score`` recognizes the rows ``fit`` scored; recomputed from their features at every
    checkpoint (as for rows never seen), the scores agree. Two models: the ensemble's members
    are rebuilt from their seeds."""
    pool, _, target = mixture
    m = make_method("dsdm", n_models=2, **TINY).fit(pool, target)
    assert len(m.weights_) == 4 and m.checkpoint_models_.tolist() == [0, 0, 1, 1]
    assert m.model_seeds_[0] == 0 and m.model_seeds_[1] != 0
    cached = m.score(pool)
    np.testing.assert_array_equal(cached, m.pool_scores_)
    m.digests_ = []  # forget them: every row is new
    recomputed = m.score(pool)
    np.testing.assert_allclose(recomputed, cached, rtol=1e-6, atol=1e-12)
    # sent to an engine's worker: the LM is left behind and rebuilt there, same scores
    clone = pickle.loads(pickle.dumps(m))
    assert "_model_lm" not in vars(clone)
    np.testing.assert_allclose(clone.score(pool[:4]), recomputed[:4], rtol=1e-9, atol=1e-15)


def test_dsdm_refuses_bad_parameters_and_scoring_before_fit():
    with pytest.raises(NotFittedError):
        make_method("dsdm", **TINY).score(["x"])
    for key, value in (("n_models", 0), ("lambda_reg", -1.0), ("projection_dim", 0)):
        with pytest.raises(TunesiftError, match=key) as info:
            make_method("dsdm", **{**TINY, key: value}).fit(["a b"], ["a b"])
        assert info.value.param == key
    with pytest.raises(TunesiftError, match="target is empty"):
        make_method("dsdm", **TINY).fit(["a b"], [])


# --- the model output and its weight, written out ------------------------------------------


def test_log_odds_gradients_are_the_gradient_of_the_mean_token_log_odds():
    """f = mean_t log(p_t / (1 - p_t)) from the softmax, Q = mean_t (1 - p_t): autograd of this
    independent form equals ``log_odds_gradients`` (which uses logit - logsumexp of the rest)."""
    lm = load_scoring_lm(
        "tinylm", max_length=16, lora=LoRASpec(4, 8, 0.0, ()), seed=0, device=torch.device("cpu")
    )
    rows = [lm.encode("abcab"), lm.encode("hello there"), lm.encode("")]
    grads, q = log_odds_gradients(lm, rows, torch.device("cpu"))
    params = [p for p in lm.model.parameters() if p.requires_grad]
    for i, row in enumerate(rows[:2]):
        ids = torch.tensor([row])
        p = torch.softmax(lm.model(ids)[0, :-1].double(), dim=1)
        p_true = p[torch.arange(len(row) - 1), ids[0, 1:]]
        f = torch.log(p_true / (1 - p_true)).mean()
        expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(f, params)])
        np.testing.assert_allclose(grads[i].numpy(), expected.numpy(), rtol=1e-4, atol=1e-7)
        assert q[i] == pytest.approx(float((1 - p_true).detach().mean()), rel=1e-6)
    # a text of one token (the start token alone) has nothing to predict
    assert not grads[2].any() and q[2] == 0.0


# --- the estimator, written out ---------------------------------------------------------------


def _trak_by_hand(pool_g, target_g, q, codes, lambda_reg):
    """s(i) = mean_c [ (1/K) Σ_k (1/|T_k|) Σ_{z in T_k} φ_c(z)ᵀ (Φ_cᵀ Φ_c + λ_c I)⁻¹ φ_c(i) ]
    x mean_c Q_c(i), λ_c = lambda_reg x tr(Φ_cᵀ Φ_c) / d: one pair (z, i) at a time."""
    n_ckpt, n, d = pool_g.shape
    tasks = sorted(set(codes.tolist()))
    total = np.zeros(n)
    for c in range(n_ckpt):
        phi = pool_g[c]
        kernel = np.zeros((d, d))
        for row in phi:
            kernel += np.outer(row, row)
        lam = lambda_reg * np.trace(kernel) / d
        inv = np.linalg.inv(kernel + lam * np.eye(d))
        for i in range(n):
            per_task = []
            for k in tasks:
                zs = [z for z in range(len(codes)) if codes[z] == k]
                per_task.append(sum(target_g[c, z] @ inv @ phi[i] for z in zs) / len(zs))
            total[i] += sum(per_task) / len(tasks)
    return (total / n_ckpt) * q.mean(axis=0)


@pytest.mark.parametrize("lambda_reg", [0.0, 0.01, 1.0])
def test_dsdm_score_equals_the_trak_estimator_on_fixed_inputs(lambda_reg):
    rng = np.random.default_rng(11)
    n_ckpt, n_pool, n_target, d = 3, 30, 7, 6  # more rows than dimensions: λ = 0 is invertible
    pool_g = rng.normal(size=(n_ckpt, n_pool, d))
    target_g = rng.normal(size=(n_ckpt, n_target, d))
    q = rng.uniform(0.1, 0.9, size=(n_ckpt, n_pool))
    codes = np.array([0, 0, 0, 1, 1, 1, 1])  # two target tasks of unequal size
    got = dsdm_scores(list(pool_g), list(target_g), list(q), lambda_reg, codes)
    expected = _trak_by_hand(pool_g, target_g, q, codes, lambda_reg)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_dsdm_sign_convention_and_ridge():
    """A pool row along the target's feature is predicted to lower the target loss (> 0), the
    opposite row to raise it (< 0); the ridge is lambda_reg times the kernel's mean eigenvalue;
    with fewer rows than dimensions, λ = 0 takes the pseudo-inverse."""
    target = np.array([[1.0, 0.0, 0.0]])
    pool = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    s = dsdm_scores([pool], [target], [np.ones(4)], 0.1)
    assert s[0] > 0 > s[1] and s[2] == 0 and s[3] == 0
    v, ridge = datamodel_direction(pool, target[0], 0.5)
    assert ridge == pytest.approx(0.5 * (1 + 1 + 1 + 4) / 3)
    np.testing.assert_allclose(v, [1 / (2 + ridge), 0, 0])
    v0, ridge0 = datamodel_direction(pool[:2], target[0], 0.0)
    assert ridge0 == 0.0
    np.testing.assert_allclose(v0, [0.5, 0, 0])
