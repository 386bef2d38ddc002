"""Issue 13, item 5: one home for each shared piece (n-gram hashing, KL reduction, vector helpers,
CLI options), and the pieces that moved still give the same numbers."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from tunesift.features.ngrams import HashedNgrams, hashed_counts
from tunesift.methods.dsir import DSIR
from tunesift.report.metrics import kl_reduction

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tunesift"
SOURCES = sorted(PACKAGE.rglob("*.py"))

POOL = [
    "The cat sat on the mat.",
    "Dogs chase cats; cats chase mice!",
    "A lion is a large cat of Africa.",
    "Compilers translate source code.",
    "The kernel schedules processes and threads.",
    "whales, dolphins and porpoises are cetaceans",
] * 3
TARGET = ["A wolf is a wild dog.", "The tiger is the largest cat.", "Mice are small rodents."]


def _defined(name: str) -> list[str]:
    """Files (relative to the package) that define a top-level function or class ``name``."""
    out = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(
            isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name for n in tree.body
        ):
            out.append(str(path.relative_to(PACKAGE)))
    return out


def test_one_hashed_ngram_hasher():
    """DSIR, the ngrams featurizer and compare's KL reduction bucket n-grams in one module."""
    bucketing = re.compile(r"%\s*_?U?(num_)?buckets\b|HashingVectorizer")
    hashers = [
        str(p.relative_to(PACKAGE)) for p in SOURCES if bucketing.search(p.read_text("utf-8"))
    ]
    assert hashers == ["features/ngrams.py"]
    assert _defined("ngram_buckets") == ["features/ngrams.py"]
    assert _defined("hashed_counts") == ["features/ngrams.py"]


@pytest.mark.parametrize("hash", ["fast", "sha256"])
def test_the_featurizer_counts_what_dsir_counts(hash):
    want = hashed_counts(POOL, num_buckets=997, hash=hash).toarray()
    got = HashedNgrams(num_buckets=997, normalize=False, hash=hash).encode(POOL)
    np.testing.assert_array_equal(got, want)
    # DSIR's weights are those counts dotted with its log ratio
    dsir = DSIR(num_buckets=997, hash=hash, min_length=0).fit(POOL, TARGET)
    np.testing.assert_allclose(dsir.score(POOL), want @ dsir.log_diff_, rtol=1e-12)


def test_sha256_buckets_are_the_packages():
    """The package hashes the UTF-8 n-gram with sha256, mod the bucket count."""
    for gram in ["alice", "alice went", "déjà", "?!"]:
        want = int.from_bytes(hashlib.sha256(gram.encode()).digest(), "big") % 10_000
        assert hashed_counts([gram.split()[0]], hash="sha256").indices[0] == (
            int.from_bytes(hashlib.sha256(gram.split()[0].encode()).digest(), "big") % 10_000
        )
        assert want in hashed_counts([gram], hash="sha256").indices


def test_one_kl_reduction_with_dsirs_smoothing():
    assert _defined("kl_reduction") == ["report/metrics.py"]
    dsir = DSIR().fit(POOL, TARGET)
    pool, target = hashed_counts(POOL), hashed_counts(TARGET)
    # the target closes the whole gap: KL(p_T || p_raw) with the weights' 1e-8 smoothing
    gap = kl_reduction(target, pool, target)
    assert gap == pytest.approx(dsir.diagnostics()["kl_target_raw"], rel=1e-12)
    assert kl_reduction(target, pool, pool) == 0.0
    # one copy of the pool has the pool's distribution; totals work like count matrices
    assert kl_reduction(target, pool, pool[:6]) == pytest.approx(0.0, abs=1e-12)
    totals = [np.asarray(m.sum(axis=0)).ravel() for m in (target, pool)]
    assert kl_reduction(*totals, target) == pytest.approx(gap, rel=1e-12)


def test_one_row_normalizer():
    """RDS+, D4, spherical k-means and the near-duplicate metric share features.vectors's."""
    from tunesift.features.vectors import normalize_rows

    assert _defined("normalize_rows") == ["features/vectors.py"]
    assert _defined("_unit") == []  # k-means's private copy
    x = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert x.dtype == np.float32 and x.tolist() == [[0.6000000238418579, 0.800000011920929], [0, 0]]
