import numpy as np
import pytest

from tunesift.errors import TunesiftError
from tunesift.features.pca import PCA


def test_pca_keeps_the_signal_subspace():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(20, 3)))[0]  # 3-d signal in 20-d
    pool = (rng.normal(size=(2000, 3)) * [5, 3, 2]) @ basis.T + 0.01 * rng.normal(size=(2000, 20))
    target = (rng.normal(size=(100, 3)) * [5, 3, 2]) @ basis.T
    pca = PCA.fit(pool, target, 3, sample=500, seed=1)
    assert pca.explained_variance_ratio > 0.999
    z = pca.transform(pool, chunk=300)
    assert z.shape == (2000, 3) and z.dtype == np.float32
    # distances are preserved: what OT sees is unchanged
    d_full = ((pool[:50, None] - target[None, :10]) ** 2).sum(-1)
    zt = pca.transform(target)
    d_pca = ((z[:50, None] - zt[None, :10]) ** 2).sum(-1)
    np.testing.assert_allclose(d_pca, d_full, rtol=1e-2, atol=1e-2)
    assert np.array_equal(
        z, PCA.fit(pool, target, 3, sample=500, seed=1).transform(pool, chunk=300)
    )


def test_pca_dim_out_of_range():
    x = np.zeros((10, 4), np.float32)
    with pytest.raises(TunesiftError, match="pca_dim"):
        PCA.fit(x, x, 5)
