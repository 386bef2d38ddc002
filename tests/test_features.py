"""Featurizers and the resumable feature cache."""

import json

import numpy as np
import pytest

from tunesift.corpus.records import RecordBatch
from tunesift.errors import InputError, TunesiftError
from tunesift.features.ngrams import HashedNgrams, ngram_buckets
from tunesift.features.registry import get_featurizer
from tunesift.features.store import cache_key, featurize, load_features_npy


class FakeCorpus:
    def __init__(self, texts, fingerprint="fp"):
        self.texts = texts
        self._fp = fingerprint

    def batches(self, batch_size=1024):
        for s in range(0, len(self.texts), batch_size):
            chunk = self.texts[s : s + batch_size]
            yield RecordBatch(
                list(range(s, s + len(chunk))),
                chunk,
                chunk,
                ["x"] * len(chunk),
                [{}] * len(chunk),
                [("f", 1)] * len(chunk),
            )

    def fingerprint(self):
        return self._fp


class CountingFeaturizer:
    """Deterministic vectors from text; counts calls; can crash after n calls (a killed run)."""

    def __init__(self, crash_after=None):
        self.id = "counting-v1"
        self.calls = 0
        self.crash_after = crash_after

    @property
    def dim(self):
        return 3

    def encode(self, texts, batch_size=64, show_progress=False):
        if self.crash_after is not None and self.calls >= self.crash_after:
            raise KeyboardInterrupt
        self.calls += 1
        return np.array(
            [[len(t), sum(map(ord, t)) % 97, i % 5] for i, t in enumerate(texts)], np.float32
        )


TEXTS = [f"document number {i} about {'cats' if i % 2 else 'code'}" for i in range(50)]


def test_cache_hit_does_not_encode(tmp_path):
    f = CountingFeaturizer()
    a = featurize(FakeCorpus(TEXTS), f, cache_dir=tmp_path, shard_size=10)
    assert a.shape == (50, 3) and f.calls == 5
    b = featurize(FakeCorpus(TEXTS), f, cache_dir=tmp_path, shard_size=10)
    assert f.calls == 5
    assert np.array_equal(a, b)


def test_crash_then_resume_encodes_only_missing_shards(tmp_path):
    reference = featurize(
        FakeCorpus(TEXTS), CountingFeaturizer(), cache_dir=tmp_path / "ref", shard_size=10
    )
    crashing = CountingFeaturizer(crash_after=2)
    with pytest.raises(KeyboardInterrupt):
        featurize(FakeCorpus(TEXTS), crashing, cache_dir=tmp_path / "c", shard_size=10)
    root = tmp_path / "c" / "features" / cache_key("counting-v1|float16", "fp")
    assert sorted(p.name for p in root.iterdir()) == ["shard-00000.npy", "shard-00001.npy"]
    resumed = CountingFeaturizer()
    out = featurize(FakeCorpus(TEXTS), resumed, cache_dir=tmp_path / "c", shard_size=10)
    assert resumed.calls == 3
    assert np.array_equal(out, reference)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["n"] == 50 and [s["rows"] for s in manifest["shards"]] == [10] * 5


def test_cache_key_changes_with_featurizer_and_corpus(tmp_path):
    f = CountingFeaturizer()
    featurize(FakeCorpus(TEXTS, "fp1"), f, cache_dir=tmp_path, shard_size=100)
    featurize(FakeCorpus(TEXTS, "fp2"), f, cache_dir=tmp_path, shard_size=100)
    assert f.calls == 2
    assert cache_key("a", "fp") != cache_key("b", "fp")


def test_nan_features_are_an_error(tmp_path):
    class NaNs(CountingFeaturizer):
        def encode(self, texts, batch_size=64, show_progress=False):
            return np.full((len(texts), 3), np.nan, np.float32)

    with pytest.raises(TunesiftError, match="NaN"):
        featurize(FakeCorpus(TEXTS), NaNs(), cache_dir=tmp_path)


def test_ngrams_are_deterministic_and_normalized():
    f = HashedNgrams(num_buckets=1000)
    a = f.encode(["The cat sat.", "the CAT sat ."])
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)
    assert np.array_equal(a[0], a[1])  # lowercased, same tokens
    buckets = ngram_buckets("a b", 1000)
    assert len(buckets) == 3  # a, b, "a b"
    assert ngram_buckets("a b", 1000) == buckets  # stable across calls (and processes: crc32)
    assert f.encode([""]).sum() == 0


def test_load_features_npy(tmp_path):
    np.save(tmp_path / "ok.npy", np.ones((4, 2), np.float64))
    x = load_features_npy(tmp_path / "ok.npy")
    assert x.dtype == np.float32 and x.shape == (4, 2)
    np.save(tmp_path / "one_d.npy", np.ones(4))
    np.save(tmp_path / "ints.npy", np.ones((4, 2), np.int64))
    for name, why in [("one_d.npy", "2-D"), ("ints.npy", "float"), ("missing.npy", "no such file")]:
        with pytest.raises(InputError, match=why) as info:
            load_features_npy(tmp_path / name)
        assert name in str(info.value)
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(InputError, match=".npy"):
        load_features_npy(tmp_path / "x.csv")


def test_unknown_featurizer(tmp_path):
    with pytest.raises(InputError, match="unknown featurizer"):
        get_featurizer("bert-huge", cache_dir=tmp_path)


@pytest.fixture(scope="module")
def minilm():
    return get_featurizer("minilm", cache_dir=None, device="cpu")


def test_minilm_is_masked_mean_pooling(minilm):
    """GOT-D's notebooks averaged over padding too; ours must not (DESIGN pitfalls)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = [
        "a cat",
        "an aardvark is a nocturnal burrowing mammal of southern Africa",
        "compile it",
    ]
    ours = minilm.encode(texts)
    tok = AutoTokenizer.from_pretrained(str(minilm.path))
    model = AutoModel.from_pretrained(str(minilm.path)).eval()
    enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    manual = (hidden * mask).sum(1) / mask.sum(1)
    manual = torch.nn.functional.normalize(manual, dim=1).numpy()
    np.testing.assert_allclose(ours, manual, atol=1e-5)
    # and a text's vector does not depend on what it was padded with
    alone = minilm.encode([texts[0]])
    np.testing.assert_allclose(alone[0], ours[0], atol=1e-5)
    assert ours.shape == (3, 384) and minilm.dim == 384


def test_static_embeddings_distill_once_and_make_sense(shared_cache):
    cache = shared_cache
    f = get_featurizer("static", cache_dir=cache)
    v = f.encode(["cat", "dog", "compiler", "kitten"])
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]  # cat is closer to dog than to compiler
    assert v[0] @ v[3] > v[0] @ v[2]
    model_dir = f.model_dir
    stamp = (model_dir / "tunesift_mean.npy").stat().st_mtime_ns
    again = get_featurizer("static", cache_dir=cache).encode(["cat"])
    assert (model_dir / "tunesift_mean.npy").stat().st_mtime_ns == stamp  # not distilled twice
    np.testing.assert_array_equal(again[0], v[0])
