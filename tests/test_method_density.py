"""Density sampling (Sachdeva et al. 2024): planted coverage, the sketch's formula, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tunesift.cli.main import main
from tunesift.errors import TunesiftError
from tunesift.methods import make_method
from tunesift.methods.base import PoolInfo
from tunesift.methods.budget import Budget, fill


def _planted(seed: int = 0):
    """One dense cluster of 600 rows, eight sparse clusters of 15 rows, 40 scattered rows.

    Clusters differ in direction (the kernel is angular): each is a unit center plus noise.
    """
    rng = np.random.default_rng(seed)
    d = 16
    centers = rng.normal(size=(9, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    dense = centers[0] + rng.normal(size=(600, d)) * 0.05
    sparse = [centers[k] + rng.normal(size=(15, d)) * 0.05 for k in range(1, 9)]
    scattered = rng.normal(size=(40, d))
    pool = np.vstack([dense, *sparse, scattered]).astype(np.float32)
    cluster = np.r_[np.zeros(600, int), np.repeat(np.arange(1, 9), 15), np.full(40, -1)]
    return pool, cluster


def _select(pool, budget, **params):
    m = make_method("density", **params).fit(pool, None)
    order = m.order(m.score(pool), PoolInfo(size=len(pool), features=pool))
    assert sorted(order.tolist()) == list(range(len(pool)))
    return m, fill(order, Budget(docs=budget))


def test_density_thins_the_dense_cluster_and_covers_every_planted_cluster():
    pool, cluster = _planted()
    share = (cluster == 0).mean()  # 0.79 of the pool
    for seed in (0, 1, 2):
        _, sel = _select(pool, 120, seed=seed)
        dense = (cluster[sel] == 0).mean()
        assert dense < 0.35 * share, f"seed {seed}: {dense:.2f} of the picks from the dense cluster"
        # every sparse planted cluster gets at least one pick
        assert set(range(1, 9)) <= set(cluster[sel].tolist()), f"seed {seed}"
    # a dense row's estimated density is far above a sparse row's
    m, _ = _select(pool, 120)
    dens = m.density(pool)
    assert np.median(dens[cluster == 0]) > 10 * np.median(dens[cluster > 0])
    # "lowest" takes the rarest first: the scattered and sparse rows, before any dense one
    _, low = _select(pool, 160, sampling="lowest")
    assert (cluster[low] == 0).sum() == 0
    assert set(range(1, 9)) <= set(cluster[low].tolist())


def test_density_is_seeded():
    pool, _ = _planted()
    _, a = _select(pool, 50, seed=3)
    _, b = _select(pool, 50, seed=3)
    _, c = _select(pool, 50, seed=4)
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()


def _transcribed_density(planes, n_hashes, n_bits, pool, rows):
    """The RACE estimate written out: for each hash r, the K sign bits of x.w give x's bucket;
    the estimate is the number of (hash, pool row) pairs in x's bucket over R N (at least 1)."""

    def bucket(x, r):
        b = 0
        for k in range(n_bits):
            w = planes[r * n_bits + k].astype(np.float64)
            if float(np.dot(w, x.astype(np.float64))) > 0:
                b += 2**k
        return b

    pool_buckets = [[bucket(p, r) for r in range(n_hashes)] for p in pool]
    out = []
    for x in rows:
        mine = [bucket(x, r) for r in range(n_hashes)]
        hits = sum(pb[r] == mine[r] for pb in pool_buckets for r in range(n_hashes))
        out.append(max(hits, 1) / (n_hashes * len(pool)))
    return np.array(out)


def test_density_equals_the_sketch_formula_on_fixed_inputs():
    rng = np.random.default_rng(7)
    pool = rng.normal(size=(30, 5)).astype(np.float32)
    new = rng.normal(size=(6, 5)).astype(np.float32) * 3
    m = make_method("density", n_hashes=5, n_bits=3, seed=2).fit(pool, None)
    assert m.planes_.shape == (15, 5) and m.counts_.sum() == 5 * 30
    for rows in (pool, new):
        expected = _transcribed_density(m.planes_, 5, 3, pool, rows)
        np.testing.assert_array_equal(m.density(rows), expected)
        np.testing.assert_array_equal(m.score(rows), -np.log(expected))


def test_density_estimates_the_angular_kernel_sum():
    """E[estimate] = 1/N sum_j (1 - angle(x, x_j)/pi)^K, SimHash's collision probability."""
    rng = np.random.default_rng(8)
    pool = rng.normal(size=(40, 6)).astype(np.float32)
    m = make_method("density", n_hashes=3000, n_bits=3, seed=0).fit(pool, None)
    unit = pool / np.linalg.norm(pool, axis=1, keepdims=True)
    cos = np.clip(unit.astype(np.float64) @ unit.T.astype(np.float64), -1.0, 1.0)
    kernel = (1.0 - np.arccos(cos) / math.pi) ** 3
    exact = kernel.mean(axis=1)
    est = m.density(pool)
    np.testing.assert_allclose(est, exact, atol=0.02)
    assert np.corrcoef(est, exact)[0, 1] > 0.98


def test_density_refuses_bad_parameters():
    with pytest.raises(TunesiftError, match="n_bits") as info:
        make_method("density", n_bits=0)
    assert info.value.param == "n_bits"
    with pytest.raises(TunesiftError, match="sampling"):
        make_method("density", sampling="top")
    with pytest.raises(TunesiftError, match="n_hashes"):
        make_method("density", n_hashes=0)


def test_density_through_the_cli_records_its_parameters(tmp_path):
    pool, cluster = _planted()
    x, y = tmp_path / "X.npy", tmp_path / "Y.npy"
    np.save(x, pool)
    np.save(y, pool[:5])
    out = tmp_path / "sel.jsonl"
    argv = ["select", "--pool-features", x, "--target-features", y, "--budget", 40,
            "--method", "density", "--param", "n_bits=6", "--out", out, "-q"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 40
    assert (cluster[[r["index"] for r in rows]] == 0).mean() < 0.5
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["method"] == "density"
    assert meta["params"] == {"n_hashes": 64, "n_bits": 6, "sampling": "ips", "seed": 0}
    assert meta["diagnostics"]["fit_rows"] == len(pool)
