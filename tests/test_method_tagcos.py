"""TAGCOS (Zhang et al. 2024): its coreset covers every planted gradient cluster, and its matching
pursuit is the paper's (a transcription on fixed inputs)."""

from __future__ import annotations

import numpy as np
import pytest

from tunesift.errors import TunesiftError
from tunesift.methods import make_method
from tunesift.methods.tagcos import omp, omp_order, proportional_merge

TINY = dict(
    model="tinylm", n_clusters=3, warmup_fraction=0.25, epochs=2, lr=1e-3, batch_size=4,
    projection_dim=256, max_length=48, device="cpu", threads=1,
)  # fmt: skip

WORDS = "the cat sat on a mat and a dog ran to the old red barn by the quiet lake".split()


def _planted(rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Three kinds of text, 24 + 12 + 6 rows, shuffled: digits, prose, shouting."""
    digits = [
        " ; ".join(str(int(x)) for x in rng.integers(10_000, 99_999, size=int(rng.integers(3, 6))))
        for _ in range(24)
    ]
    prose = [" ".join(rng.choice(WORDS, size=int(rng.integers(6, 10)))) for _ in range(12)]
    shout = [
        "!! ".join("".join(rng.choice(list("XQZKW"), size=4)) for _ in range(4)) for _ in range(6)
    ]
    texts = digits + prose + shout
    kind = np.repeat([0, 1, 2], [24, 12, 6])
    perm = rng.permutation(len(texts))
    return [texts[i] for i in perm], kind[perm]


@pytest.fixture(scope="module")
def fitted():
    pool, kind = _planted(np.random.default_rng(0))
    m = make_method("tagcos", **TINY).fit(pool, None)
    return m, pool, kind


def test_tagcos_covers_every_planted_gradient_cluster(fitted):
    m, pool, kind = fitted
    # the gradient clusters are the planted kinds
    for c in range(3):
        members = kind[m.labels_ == c]
        assert len(members) and np.bincount(members).max() == len(members), (c, members)
    # a budget takes from every cluster its share (24 : 12 : 6), so 7 rows already cover all three
    order = m.order(m.score(pool), None)
    assert sorted(order.tolist()) == list(range(len(pool)))
    assert np.bincount(kind[order[:7]], minlength=3).tolist() == [4, 2, 1]
    assert np.bincount(kind[order[:14]], minlength=3).tolist() == [8, 4, 2]
    # the order is the fitted one, and seeded: a refit gives the same bytes
    assert order.tolist() == m.order_.tolist()
    again = make_method("tagcos", **TINY).fit(pool, None).score(pool)
    assert again.tobytes() == m.score(pool).tobytes()


def test_tagcos_scores_rows_fit_never_saw_below_the_fitted_ones(fitted):
    m, pool, _ = fitted
    s = m.score(["a new text the fit never saw", pool[0]])
    assert s[0] < 0 < s[1]


def test_tagcos_refuses_bad_parameters():
    with pytest.raises(TunesiftError, match="n_clusters") as info:
        make_method("tagcos", **{**TINY, "n_clusters": 0}).fit(["a b c"], None)
    assert info.value.param == "n_clusters"


# --- the matching pursuit, written out ------------------------------------------------------------


def _omp_by_hand(A, b, lam, tol):
    """Positive OMP with ridge, as TAGCOS's Algorithm 1 states it (columns of A are candidates)."""
    S, x = [], None
    r = b.copy()
    for _ in range(A.shape[1]):
        if np.sqrt((r**2).sum()) / np.sqrt((b**2).sum()) < tol:
            break
        scores = [float(A[:, j] @ r) for j in range(A.shape[1])]
        j = max(range(len(scores)), key=lambda k: (scores[k], -k))
        if j in S:
            break
        S.append(j)
        if len(S) == 1:
            x = [scores[j] / float(A[:, j] @ A[:, j])]
        else:
            while S:
                M = np.array([[A[:, p] @ A[:, q] for q in S] for p in S]) + lam * np.eye(len(S))
                x = list(np.linalg.solve(M, np.array([A[:, p] @ b for p in S])))
                if min(x) >= 0:
                    break
                del S[x.index(min(x))]
            if not S:
                break
        r = b - sum(c * A[:, p] for c, p in zip(x, S, strict=True))
    return S, x


@pytest.mark.parametrize("seed", range(5))
def test_omp_equals_the_papers_algorithm_on_fixed_inputs(seed):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(30, 12))
    target = vectors[:10].mean(axis=0)  # a centroid: the mean of some of the rows
    for lam in (0.0, 1.0):
        picks, x = omp(vectors, target, lam=lam, tol=1e-4)
        S, xs = _omp_by_hand(vectors.T, target, lam, 1e-4)
        assert picks == S
        np.testing.assert_allclose(x, xs, rtol=1e-8, atol=1e-10)


def test_omp_recovers_a_planted_sparse_combination():
    """b = 0.3 a_2 + 0.7 a_5 with near-orthogonal candidates: OMP (no ridge) finds those two."""
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(20, 8)))
    vectors = q.T  # 8 orthonormal rows
    picks, x = omp(vectors, 0.3 * vectors[2] + 0.7 * vectors[5], lam=0.0, tol=1e-6)
    assert picks == [5, 2]
    np.testing.assert_allclose(x, [0.7, 0.3], atol=1e-10)


def test_omp_order_covers_the_cluster_and_merge_keeps_shares():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(25, 6)) + 1.0
    order, rounds = omp_order(vectors, vectors.mean(axis=0), lam=1.0, tol=1e-4)
    assert sorted(order.tolist()) == list(range(25)) and rounds >= 1
    merged = proportional_merge([np.arange(0, 10), np.arange(10, 15), np.arange(15, 17)])
    for k in (2, 4, 8, 17):
        counts = np.bincount(np.searchsorted([10, 15], merged[:k], side="right"), minlength=3)
        shares = k * np.array([10, 5, 2]) / 17
        assert np.all(np.abs(counts - shares) <= 1), (k, counts)
