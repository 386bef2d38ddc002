"""The literature's selectors on planted structure they must recover, plus the shared rules.

Each test plants what a method is for (a target domain, near-duplicates, small clusters,
strata, sources) in synthetic embeddings and checks the method finds it; real-text recovery
is in test_compare.py.
"""

import numpy as np
import pytest

from tunesift.errors import TunesiftError
from tunesift.methods import METHODS, make_method
from tunesift.methods.base import PoolInfo, gumbel_order, interleave
from tunesift.methods.budget import Budget, fill
from tunesift.methods.d4 import semdedup_cluster


def run(name, pool, target, info, budget, **params):
    m = make_method(name, **params)
    if m.inputs == "features":
        m.fit(pool, target)
        scores = m.score(pool)
    else:
        m.fit(None, None)
        scores = m.score(np.empty((info.size, 0)))
    order = m.order(scores, info)
    assert sorted(order.tolist()) == list(range(info.size)), f"{name}: order is not a permutation"
    return m, fill(order, budget, lengths=None, sources=info.sources)


@pytest.fixture(scope="module")
def planted():
    """2,000 'other' points, 150 'domain' points off to one side; target drawn from the domain."""
    rng = np.random.default_rng(0)
    other = rng.normal(size=(2000, 32))
    domain = rng.normal(size=(150, 32)) * 0.5 + 3.0
    pool = np.vstack([other, domain]).astype(np.float32)
    target = (rng.normal(size=(60, 32)) * 0.5 + 3.0).astype(np.float32)
    sources = np.r_[np.zeros(2000, int), np.ones(150, int)]
    info = PoolInfo(
        size=len(pool), sources=sources, source_names=("other", "domain"), features=pool
    )
    return pool, target, info


def test_rds_recovers_the_target_domain(planted):
    pool, target, info = planted
    _, sel = run("rds", pool, target, info, Budget(docs=120))
    assert (sel >= 2000).mean() >= 0.9


def test_rds_round_robin_gives_each_target_task_its_turn():
    """Two target tasks with very different pool neighbourhoods: each gets half the budget."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 8)) + 10 * np.eye(8)[0]
    b = rng.normal(size=(300, 8)) + 10 * np.eye(8)[1]
    pool = np.vstack([a, b]).astype(np.float32)
    # task A has many queries close to its cluster, task B few: plain max-ranking would favour A
    target = np.vstack([a[:40] + 0.01, b[:5] + 0.01]).astype(np.float32)
    info = PoolInfo(
        size=600, features=pool, target_sources=np.r_[np.zeros(40, int), np.ones(5, int)]
    )
    _, sel = run("rds", pool, target, info, Budget(docs=100))
    assert (sel < 300).sum() == 50 and (sel >= 300).sum() == 50


def test_rds_deepens_its_lists_when_queries_share_neighbours():
    """All queries want the same rows: the per-query lists must grow to reach the budget."""
    rng = np.random.default_rng(2)
    pool = rng.normal(size=(500, 4)).astype(np.float32)
    target = np.repeat(pool[:1], 20, axis=0) + 1e-4
    info = PoolInfo(size=500, features=pool)
    _, sel = run("rds", pool, target, info, Budget(docs=200))
    assert len(np.unique(sel)) == 200


def test_kmq_fills_its_budget_exactly_with_clusters_smaller_than_the_quota():
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(10, 16)) * 20
    sizes = [2, 3, 5, 200, 200, 200, 200, 200, 200, 200]
    pool = np.vstack(
        [c + rng.normal(size=(s, 16)) for c, s in zip(centers, sizes, strict=False)]
    ).astype(np.float32)
    label = np.repeat(np.arange(10), sizes)
    info = PoolInfo(size=len(pool), features=pool)
    m, sel = run("kmq", pool, None, info, Budget(docs=300), n_clusters=10)
    assert len(sel) == 300 and len(np.unique(sel)) == 300
    got = np.bincount(label[sel], minlength=10)
    # the three small clusters give all they have; the other seven share the rest equally
    assert got[:3].tolist() == [2, 3, 5]
    assert got[3:].min() >= 41 and got[3:].max() <= 42


def test_kmq_quality_draw_prefers_high_quality():
    rng = np.random.default_rng(4)
    pool = rng.normal(size=(1000, 8)).astype(np.float32)
    quality = np.where(np.arange(1000) % 2 == 0, 5.0, 0.0)
    info = PoolInfo(size=1000, features=pool, columns={"q": quality})
    _, sel = run("kmq", pool, None, info, Budget(docs=200), n_clusters=5, quality_field="q")
    assert (quality[sel] > 0).mean() > 0.9
    with pytest.raises(TunesiftError, match="no numeric field"):
        run("kmq", pool, None, PoolInfo(size=1000, features=pool), Budget(docs=10),
            n_clusters=5, quality_field="q")  # fmt: skip


def test_semdedup_removes_planted_near_duplicates_and_little_else():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(1000, 64))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    dup_of = rng.choice(1000, size=200, replace=False)
    dups = base[dup_of] + rng.normal(size=(200, 64)) * 0.01
    pool = np.vstack([base, dups]).astype(np.float32)
    info = PoolInfo(size=1200, features=pool)
    m, sel = run("d4", pool, None, info, Budget(docs=1000), n_clusters=8, epsilon=0.05)
    assert m.n_duplicates_ >= 190  # at least 95% of the planted pairs lose one member
    # of each planted pair exactly one survives; unique points are nearly all kept
    kept = set(sel[: 1200 - m.n_duplicates_].tolist())
    pair_kept = np.array([(i in kept) + ((1000 + j) in kept) for j, i in enumerate(dup_of)])
    assert (pair_kept == 1).mean() >= 0.95
    singles = np.setdiff1d(np.arange(1000), dup_of)
    assert np.isin(singles, list(kept)).mean() > 0.95


def test_semdedup_compares_with_kept_items_only():
    """A chain a~b~c with a, c apart: the original drops b and c; the greedy rule keeps c."""
    a = np.array([1.0, 0.0])
    ang = 0.25
    b = np.array([np.cos(ang), np.sin(ang)])
    c = np.array([np.cos(2 * ang), np.sin(2 * ang)])
    x = np.vstack([a, b, c]).astype(np.float32)
    keep = semdedup_cluster(x, threshold=float(np.cos(ang)) - 1e-6)
    assert keep.tolist() == [True, False, True]


def test_d4_prunes_the_most_prototypical_points_first():
    rng = np.random.default_rng(6)
    pool = rng.normal(size=(400, 8)).astype(np.float32)
    info = PoolInfo(size=400, features=pool)
    m, sel = run("d4", pool, None, info, Budget(docs=100), n_clusters=1, epsilon=0.0)
    centroid = pool / np.linalg.norm(pool, axis=1, keepdims=True)
    cos = centroid @ (centroid.mean(0) / np.linalg.norm(centroid.mean(0)))
    # the kept 100 are the ones farthest (in cosine) from the single prototype
    assert np.median(cos[sel]) < np.median(np.delete(cos, sel))


def test_ccs_covers_every_stratum_and_prunes_the_hardest():
    rng = np.random.default_rng(7)
    n = 5000
    # a skewed score: most items easy; CCS should still spread over the whole range
    score = rng.exponential(size=n)
    info = PoolInfo(size=n, features=np.zeros((n, 1), np.float32), columns={"d": score})
    m = make_method("ccs", score_by="field:d", beta=0.1, n_strata=10, seed=0)
    m.fit(np.zeros((n, 1), np.float32), np.zeros((1, 1), np.float32))
    order = m.order(m.score(np.zeros((n, 1), np.float32)), info)
    sel = fill(order, Budget(docs=500))
    hardest = np.argsort(-score)[: int(0.1 * n)]
    assert not np.isin(sel, hardest).any()
    rest = np.setdiff1d(np.arange(n), hardest)
    lo, hi = score[rest].min(), score[rest].max()
    strata = np.minimum(((score[sel] - lo) / ((hi - lo) / 10)).astype(int), 9)
    counts = np.bincount(strata, minlength=10)
    assert (counts > 0).all()
    # water-filling: full strata were taken whole, the others share equally (within one)
    sizes = np.bincount(
        np.minimum(((score[rest] - lo) / ((hi - lo) / 10)).astype(int), 9), minlength=10
    )
    level = counts[counts < sizes]
    assert level.max() - level.min() <= 1 and (counts <= sizes).all()


def test_ccs_over_gotd_scores_runs_on_features(planted):
    pool, target, info = planted
    _, sel = run("ccs", pool, target, info, Budget(docs=100))
    assert len(np.unique(sel)) == 100


def test_random_balanced_is_uniform_over_sources_with_leftovers_redistributed():
    sources = np.repeat([0, 1, 2], [10, 500, 500])
    info = PoolInfo(size=1010, sources=sources, source_names=("a", "b", "c"))
    _, sel = run("random-balanced", None, None, info, Budget(docs=300))
    assert np.bincount(sources[sel]).tolist() == [10, 145, 145]
    with pytest.raises(TunesiftError, match="sources"):
        run("random-balanced", None, None, PoolInfo(size=10), Budget(docs=5))


def test_every_method_is_seeded(planted):
    pool, target, info = planted
    for name in ("random", "random-balanced", "kmq", "ccs", "d4", "rds", "gotd"):
        _, a = run(name, pool, target, info, Budget(docs=50), seed=3)
        _, b = run(name, pool, target, info, Budget(docs=50), seed=3)
        assert a.tolist() == b.tolist(), name
    _, a = run("random", pool, target, info, Budget(docs=50), seed=1)
    _, b = run("random", pool, target, info, Budget(docs=50), seed=2)
    assert a.tolist() != b.tolist()


def test_interleave_and_gumbel_order():
    assert interleave([np.array([1, 2, 3]), np.array([7]), np.array([8, 9])]).tolist() == [
        1, 7, 8, 2, 9, 3,
    ]  # fmt: skip
    w = np.log(np.array([1.0, 1.0, 1e6, 1.0]))
    assert gumbel_order(w, 0)[0] == 2
    assert gumbel_order(w, 5).tolist() == gumbel_order(w, 5).tolist()


def test_budget_in_tokens_never_overflows_and_uses_what_is_left():
    order = np.arange(6)
    lengths = np.array([5, 5, 20, 3, 1, 100])
    assert fill(order, Budget(tokens=14), lengths=lengths).tolist() == [0, 1, 3, 4]
    assert fill(order, Budget(tokens=1000), lengths=lengths).tolist() == list(range(6))


def test_per_source_cap_applies_to_any_order():
    sources = np.array([0, 0, 0, 1, 1, 2])
    order = np.arange(6)
    assert fill(order, Budget(docs=4, max_per_source=2), sources=sources).tolist() == [0, 1, 3, 4]
    with pytest.raises(TunesiftError, match="more than the 5"):
        fill(order, Budget(docs=6, max_per_source=2), sources=sources)
    with pytest.raises(TunesiftError, match="exactly one budget"):
        Budget(docs=3, tokens=10)


def test_registry_names_every_method_and_rejects_bad_parameters():
    for name in ("gotd", "dsir", "rds", "kmq", "d4", "ccs", "zipfit", "random", "random-balanced"):
        assert name in METHODS
    with pytest.raises(TunesiftError, match="bad parameter"):
        make_method("kmq", clusters=3)
    with pytest.raises(TunesiftError, match="unknown method"):
        make_method("nope")
