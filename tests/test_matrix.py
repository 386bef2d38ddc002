"""FeatureMatrix reads rows of float16/float32 shards as float32, exactly like a dense array."""

import numpy as np
import pytest

from tunesift.features.matrix import FeatureMatrix


@pytest.fixture
def parts():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(23, 5)).astype(np.float32)
    shards = [
        dense[:7].astype(np.float16),
        dense[7:8].astype(np.float16),
        dense[8:].astype(np.float16),
    ]
    ref = np.concatenate(shards).astype(np.float32)
    return FeatureMatrix(shards), ref


def test_indexing_matches_the_dense_array(parts):
    m, ref = parts
    assert m.shape == (23, 5) and len(m) == 23 and m.dtype == np.float32
    for key in [slice(None), slice(3, 12), slice(6, 9), slice(20, 100), slice(5, 5), slice(1, 20, 3),
                np.array([22, 0, 7, 7, 8, -1]), np.arange(23)[::-1], np.zeros(23, bool) | (np.arange(23) % 4 == 0)]:  # fmt: skip
        got = m[key]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, ref[key])
    np.testing.assert_array_equal(m[7], ref[7])
    np.testing.assert_array_equal(np.asarray(m), ref)
    np.testing.assert_array_equal(np.ascontiguousarray(m, dtype=np.float32), ref)
    np.testing.assert_array_equal(m[2:9, 1:3], ref[2:9, 1:3])
    with pytest.raises(IndexError):
        m[np.array([23])]


def test_float16_storage_is_close_and_half_the_bytes(parts):
    m, ref = parts
    assert m.storage_dtype == np.float16 and m.nbytes == 23 * 5 * 2
    dense = np.random.default_rng(0).normal(size=(23, 5)).astype(np.float32)
    assert np.abs(np.asarray(m) - dense).max() < 4e-3  # float16: ~3 significant digits


def test_bad_shards():
    with pytest.raises(ValueError):
        FeatureMatrix([])
    with pytest.raises(ValueError):
        FeatureMatrix([np.zeros((2, 3)), np.zeros((2, 4))])
