"""The Sinkhorn solver: exactness of the blocked/fused loop, the fit/score split, and POT parity."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from tunesift.errors import TunesiftError
from tunesift.ot import sinkhorn as sinkhorn_module
from tunesift.ot.sinkhorn import c_transform, estimate_cost_scale, sinkhorn, squared_distances


def _clouds(n=600, m=80, d=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (rng.normal(size=(m, d)) + 0.7).astype(np.float32)
    return x, y


def _dense_log_sinkhorn(x, y, eps, iters):
    """Textbook log-domain Sinkhorn on the full matrix in float64: the reference for the blocked loop."""
    c = ((y[:, None, :].astype(np.float64) - x[None].astype(np.float64)) ** 2).sum(-1)  # (M, N)
    m, n = c.shape
    f, g = np.zeros(m), np.zeros(n)

    def lse(a, axis):
        return np.log(np.exp(a - a.max(axis, keepdims=True)).sum(axis)) + a.max(axis)

    for _ in range(iters):
        g = -eps * lse((f[:, None] - c) / eps - np.log(m), 0)
        f = -eps * lse((g[None, :] - c) / eps - np.log(n), 1)
    g = -eps * lse((f[:, None] - c) / eps - np.log(m), 0)
    return f, g


def test_squared_distances_match_numpy():
    x, y = _clouds(50, 7)
    c = squared_distances(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    ref = ((x[:, None] - y[None]) ** 2).sum(-1)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-4)
    assert (c >= 0).all()


def test_matches_dense_float64_reference():
    x, y = _clouds()
    eps = 0.1 * estimate_cost_scale(x, y)
    # 1e-6: float32 potentials stall between 1e-7 and 1e-6 for some epsilons
    res = sinkhorn(x, y, eps, tol=1e-6, max_iter=5000, device="cpu")
    assert res.converged and res.marginal_error < 1e-6
    f_ref, g_ref = _dense_log_sinkhorn(x, y, eps, res.n_iter + 200)
    # potentials are defined up to (f + c, g - c): compare after centring g
    np.testing.assert_allclose(res.g - res.g.mean(), g_ref - g_ref.mean(), atol=2e-3 * eps)


def test_blocked_uncached_equals_cached():
    x, y = _clouds(1000, 50)
    eps = 0.05 * estimate_cost_scale(x, y)
    cached = sinkhorn(x, y, eps, tol=1e-6, block_rows=128, device="cpu")
    streamed = sinkhorn(x, y, eps, tol=1e-6, block_rows=128, max_cache_bytes=0, device="cpu")
    assert cached.cost_cached and not streamed.cost_cached
    assert cached.n_iter == streamed.n_iter
    np.testing.assert_array_equal(cached.g, streamed.g)


def test_c_transform_is_the_pool_potential():
    x, y = _clouds(900, 60)
    eps = 0.05 * estimate_cost_scale(x, y)
    res = sinkhorn(x, y, eps, tol=1e-6, block_rows=256, device="cpu")
    g = c_transform(res.f, y, x, eps, block_rows=256, device="cpu")
    np.testing.assert_array_equal(g, res.g)
    # shard by shard gives the same scores: the map step of a distributed run
    shards = [c_transform(res.f, y, x[s : s + 300], eps, device="cpu") for s in range(0, 900, 300)]
    np.testing.assert_allclose(np.concatenate(shards), res.g, atol=1e-6 * abs(res.g).max())


def test_momentum_converges_to_the_same_potentials():
    x, y = _clouds(800, 60)
    eps = 0.02 * estimate_cost_scale(x, y)
    plain = sinkhorn(x, y, eps, tol=1e-6, device="cpu")
    fast = sinkhorn(x, y, eps, tol=1e-6, momentum=1.3, device="cpu")
    assert plain.converged and fast.converged
    assert spearmanr(plain.g, fast.g).statistic > 0.9999


def test_marginal_error_is_the_plan_error():
    x, y = _clouds(300, 40)
    eps = 0.1 * estimate_cost_scale(x, y)
    res = sinkhorn(x, y, eps, tol=1e-3, device="cpu")
    c = ((y[:, None].astype(np.float64) - x[None]) ** 2).sum(-1)
    plan = np.exp((res.f[:, None] + res.g[None, :] - c) / eps) / (len(y) * len(x))
    assert abs(plan.sum(0) - 1 / len(x)).sum() < 1e-5  # the pool marginal is exact
    target_err = abs(plan.sum(1) - 1 / len(y)).sum()
    assert target_err == pytest.approx(res.marginal_error, rel=1e-2, abs=1e-6)


def test_pot_parity_on_gaussian_clouds():
    ot = pytest.importorskip("ot")
    x, y = _clouds(1500, 150, d=32)
    eps = 0.05 * estimate_cost_scale(x, y)
    res = sinkhorn(x, y, eps, tol=1e-6, device="cpu")
    a = np.full(len(y), 1 / len(y))
    b = np.full(len(x), 1 / len(x))
    c = ot.dist(y.astype(np.float64), x.astype(np.float64))
    _, log = ot.sinkhorn(
        a, b, c, eps, method="sinkhorn_log", log=True, numItermax=3000, stopThr=1e-9
    )
    g_pot = eps * log["log_v"]
    assert spearmanr(res.g, g_pot).statistic > 0.9999


@pytest.mark.parametrize("eps", [0.0, -1.0, float("nan")])
def test_bad_epsilon(eps):
    x, y = _clouds(10, 5)
    with pytest.raises(TunesiftError):
        sinkhorn(x, y, eps, device="cpu")


def test_not_converged_is_reported():
    x, y = _clouds(400, 40)
    eps = 0.005 * estimate_cost_scale(x, y)
    res = sinkhorn(x, y, eps, tol=1e-9, max_iter=3, device="cpu")
    assert not res.converged and res.n_iter == 3 and res.marginal_error > 1e-9


def test_underflowing_target_column_falls_back_to_exact_log_domain(monkeypatch):
    # One target far from every pool point: at the first iterations no pool row gives it any
    # softmax mass in float32, so its column sum underflows; the exact fallback must take over.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 2)).astype(np.float32)
    y = np.vstack([rng.normal(size=(20, 2)), [[40.0, 0.0]]]).astype(np.float32)
    eps = 0.5
    calls = []
    exact = sinkhorn_module._exact_column_lse
    monkeypatch.setattr(
        sinkhorn_module, "_exact_column_lse", lambda *a: calls.append(1) or exact(*a)
    )
    res = sinkhorn(x, y, eps, tol=1e-4, max_iter=20000, device="cpu")
    assert calls, "the underflow fallback was not exercised"
    assert res.converged and np.isfinite(res.f).all() and np.isfinite(res.g).all()
    _, g_ref = _dense_log_sinkhorn(x, y, eps, res.n_iter + 500)
    assert spearmanr(res.g, g_ref).statistic > 0.999
