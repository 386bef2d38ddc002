"""Issue 12, defects 2-6 and 8: each test failed on the code before its fix."""

from __future__ import annotations

import numpy as np

from tunesift.ot.sinkhorn import c_transform, estimate_cost_scale, sinkhorn


def _clouds(n: int, m: int, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (rng.normal(size=(m, d)) + 0.5).astype(np.float32)
    return x, y


# --- D2: Sinkhorn returns a consistent (f, g) pair, whatever the stopping reason -------------


def _dual_value(f: np.ndarray, g: np.ndarray, x: np.ndarray, y: np.ndarray, eps: float) -> float:
    """The entropic dual <a,f> + <b,g> - eps <a b^T, exp((f + g - C)/eps) - 1>, in float64."""
    c = ((y[:, None, :].astype(np.float64) - x[None].astype(np.float64)) ** 2).sum(-1)  # (M, N)
    m, n = c.shape
    f64, g64 = f.astype(np.float64), g.astype(np.float64)
    mass = np.exp((f64[:, None] + g64[None, :] - c) / eps).sum() / (m * n)
    return float(f64.mean() + g64.mean() - eps * (mass - 1.0))


def test_d2_sinkhorn_stopped_early_returns_g_as_c_transform_of_f():
    x, y = _clouds(300, 50)
    eps = 0.05 * estimate_cost_scale(x, y)
    for momentum in (1.0, 1.3):
        res = sinkhorn(x, y, eps, tol=1e-12, max_iter=3, momentum=momentum, device="cpu")
        assert not res.converged and res.n_iter == 3
        g = c_transform(res.f, y, x, eps, device="cpu")
        np.testing.assert_allclose(res.g, g, rtol=0, atol=1e-5 * np.abs(g).max())
        dual = _dual_value(res.f, res.g, x, y, eps)
        assert abs(res.cost - dual) <= 1e-4 * max(1.0, abs(dual))
