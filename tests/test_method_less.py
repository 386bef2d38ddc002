"""LESS (Xia et al. 2024): a planted mixture it must sort, and its score against the paper's formula.

The planted test runs the whole method (LoRA warm-up, Adam-preconditioned per-example gradients at
every checkpoint, projection, max over target tasks) on a byte-level TinyLM; the formula test
writes Eq. 3 out by hand, loop by loop, on fixed gradients, moments and learning rates, and
compares it with the library's pieces chained as ``LESS.score`` chains them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tunesift.errors import NotFittedError, TunesiftError
from tunesift.methods import make_method
from tunesift.methods.less import checkpoint_weights, less_scores, task_gradients
from tunesift.models.per_example_grads import adam_direction, unit_rows

#: a tiny configuration: TinyLM, a few warm-up steps, a small projection
TINY = dict(
    model="tinylm", warmup_fraction=0.25, epochs=2, lr=1e-3, batch_size=4,
    projection_dim=256, max_length=48, device="cpu", threads=1,
)  # fmt: skip

WORDS = "the cat sat on a mat and a dog ran to the old red barn by the quiet lake".split()


def _prose(rng: np.random.Generator, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(6, 10)))) for _ in range(n)]


def _digits(rng: np.random.Generator, n: int) -> list[str]:
    return [
        " ; ".join(str(int(x)) for x in rng.integers(10_000, 99_999, size=int(rng.integers(3, 6))))
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def mixture():
    """30 rows of digits and 10 rows of prose, shuffled; the target is prose."""
    rng = np.random.default_rng(0)
    texts = _digits(rng, 30) + _prose(rng, 10)
    is_prose = np.r_[np.zeros(30, bool), np.ones(10, bool)]
    perm = rng.permutation(len(texts))
    return [texts[i] for i in perm], is_prose[perm], _prose(rng, 6)


def test_less_ranks_target_like_rows_first_on_a_planted_mixture(mixture):
    pool, is_prose, target = mixture
    m = make_method("less", **TINY).fit(pool, target)
    scores = m.score(pool)
    top = np.argsort(-scores, kind="stable")[: int(is_prose.sum())]
    assert is_prose[top].mean() >= 0.9, scores
    # every prose row scores above the median digit row
    assert scores[is_prose].min() > np.median(scores[~is_prose])
    # two checkpoints (one per epoch), weighted by their mean learning rate (decaying: 1st > 2nd)
    assert len(m.checkpoint_steps_) == 2 and m.checkpoint_weights_[0] > m.checkpoint_weights_[1]
    assert math.isclose(m.checkpoint_weights_.sum(), 1.0)
    # seeded: the same fit gives the same bytes
    again = make_method("less", **TINY).fit(pool, target).score(pool)
    assert again.tobytes() == scores.tobytes()


def test_less_takes_the_max_over_target_tasks(mixture):
    """A target of two tasks (prose, digits): both kinds of rows now score high somewhere, and a
    row's score is its best task's."""
    pool, is_prose, target = mixture
    rng = np.random.default_rng(1)
    both = target + _digits(rng, 6)
    m = make_method("less", **TINY)
    m.set_target_tasks(np.r_[np.zeros(6, int), np.ones(6, int)])
    m.fit(pool, both)
    assert m.task_gradients_.shape[:2] == (2, 2)
    scores = m.score(pool)
    single = make_method("less", **TINY).fit(pool, target).score(pool)
    # the digit rows gain from their own task; the prose rows keep (at least) their prose score
    assert scores[~is_prose].mean() > single[~is_prose].mean()
    assert np.all(scores[is_prose] >= single[is_prose] - 1e-6)


def test_less_refuses_bad_parameters_and_scoring_before_fit():
    with pytest.raises(NotFittedError):
        make_method("less", **TINY).score(["x"])
    with pytest.raises(TunesiftError, match="warmup_fraction") as info:
        make_method("less", **{**TINY, "warmup_fraction": 0}).fit(["a b"], ["a b"])
    assert info.value.param == "warmup_fraction"
    with pytest.raises(TunesiftError, match="projection_dim"):
        make_method("less", **{**TINY, "projection_dim": 0}).fit(["a b"], ["a b"])


# --- the formula, written out ----------------------------------------------------------------


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _adam_by_hand(g, m, v, b1=0.9, b2=0.999, eps=1e-8):
    """Γ, one coordinate at a time (LESS's ``obtain_gradients_with_adam``)."""
    out = np.empty_like(g)
    for j in range(len(g)):
        mj = b1 * m[j] + (1 - b1) * g[j]
        vj = b2 * v[j] + (1 - b2) * g[j] ** 2
        out[j] = mj / math.sqrt(vj + eps)
    return out


def test_less_score_equals_the_papers_formula_on_fixed_inputs():
    """Inf(z, D_t) = (1/|D_t|) Σ_{z' in D_t} Σ_i (η̄_i / Σ_j η̄_j) cos(∇ℓ(z'; θ_i), Γ(z, θ_i)),
    score(z) = max_t Inf(z, D_t), with no projection (a projection only approximates cosines)."""
    rng = np.random.default_rng(7)
    n_ckpt, n_pool, n_target, p = 3, 5, 7, 11
    pool_g = rng.normal(size=(n_ckpt, n_pool, p))
    target_g = rng.normal(size=(n_ckpt, n_target, p))
    exp_avg = rng.normal(size=(n_ckpt, p)) * 0.1
    exp_avg_sq = rng.uniform(0.01, 0.2, size=(n_ckpt, p))
    lrs = [1.7e-5, 1.2e-5, 4.0e-6]
    tasks = np.array([0, 0, 1, 1, 1, 2, 2])

    expected = np.empty(n_pool)
    for z in range(n_pool):
        per_task = []
        for t in (0, 1, 2):
            rows = [r for r in range(n_target) if tasks[r] == t]
            total = 0.0
            for r in rows:
                for i in range(n_ckpt):
                    gamma = _adam_by_hand(pool_g[i, z], exp_avg[i], exp_avg_sq[i])
                    total += lrs[i] / sum(lrs) * _cos(target_g[i, r], gamma)
            per_task.append(total / len(rows))
        expected[z] = max(per_task)

    weights = checkpoint_weights(lrs)
    influences = []
    for i in range(n_ckpt):
        gamma = adam_direction(
            torch.from_numpy(pool_g[i]),
            torch.from_numpy(exp_avg[i]),
            torch.from_numpy(exp_avg_sq[i]),
        ).numpy()
        t_grads = task_gradients(unit_rows(target_g[i]), tasks, np.unique(tasks))
        influences.append(unit_rows(gamma) @ t_grads.T)
    np.testing.assert_allclose(less_scores(influences, weights), expected, rtol=1e-5, atol=1e-6)
