"""Featurizers and the resumable feature cache."""

import hashlib
import json

import numpy as np
import pytest

import tunesift
from tunesift.corpus.records import RecordBatch
from tunesift.errors import InputError, TunesiftError
from tunesift.features.ngrams import HashedNgrams, ngram_buckets
from tunesift.features.registry import get_featurizer
from tunesift.features.sentence import SentenceEncoder
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
    assert sorted(p.name for p in root.iterdir()) == [
        ".lock",
        "layout.json",
        "shard-00000.npy",
        "shard-00000.npy.sum",
        "shard-00001.npy",
        "shard-00001.npy.sum",
    ]
    resumed = CountingFeaturizer()
    out = featurize(FakeCorpus(TEXTS), resumed, cache_dir=tmp_path / "c", shard_size=10)
    assert resumed.calls == 3
    assert np.array_equal(out, reference)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["n"] == 50 and [s["rows"] for s in manifest["shards"]] == [10] * 5
    assert manifest["featurizer"] == "counting-v1" and manifest["fingerprint"] == "fp"
    assert manifest["dim"] == 3 and manifest["tunesift_version"] == tunesift.__version__


def test_resume_with_another_shard_size_keeps_the_first_layout(tmp_path):
    """Shard 1 of 10-row shards has 10 rows, like shard 1 of 20-row shards over 30 texts, but
    holds rows 10-19, not 20-29: a resume must not take it."""
    texts = TEXTS[:30]
    reference = featurize(FakeCorpus(texts), CountingFeaturizer(), cache_dir=tmp_path / "r")
    with pytest.raises(KeyboardInterrupt):
        featurize(
            FakeCorpus(texts), CountingFeaturizer(crash_after=2), cache_dir=tmp_path, shard_size=10
        )
    resumed = CountingFeaturizer()
    out = featurize(FakeCorpus(texts), resumed, cache_dir=tmp_path, shard_size=20)
    assert resumed.calls == 1  # only the third 10-row shard
    assert np.array_equal(out, reference)


def test_a_damaged_cache_is_rebuilt_where_damaged(tmp_path):
    reference = featurize(
        FakeCorpus(TEXTS), CountingFeaturizer(), cache_dir=tmp_path, shard_size=10
    )
    reference = np.asarray(reference)
    root = tmp_path / "features" / cache_key("counting-v1|float16", "fp")
    (root / "shard-00003.npy").unlink()
    f = CountingFeaturizer()
    assert np.array_equal(
        featurize(FakeCorpus(TEXTS), f, cache_dir=tmp_path, shard_size=10), reference
    )
    assert f.calls == 1
    (root / "manifest.json").write_text("{trunc")  # a torn manifest: rebuilt from the shards
    f = CountingFeaturizer()
    assert np.array_equal(
        featurize(FakeCorpus(TEXTS), f, cache_dir=tmp_path, shard_size=10), reference
    )
    assert f.calls == 0


def test_empty_corpus_gives_zero_rows_of_the_featurizer_width(tmp_path):
    out = featurize(FakeCorpus([]), CountingFeaturizer(), cache_dir=tmp_path)
    assert out.shape == (0, 3) and out.dtype == np.float32


@pytest.mark.parametrize(
    "bad, why",
    [
        (lambda texts: np.zeros((len(texts) + 1, 3), np.float32), "shape"),
        (lambda texts: np.zeros((len(texts), 3), np.int64), "not floats"),
        (lambda texts: np.full((len(texts), 3), np.inf, np.float32), "infinite"),
    ],
)
def test_bad_featurizer_output_is_an_error_naming_it(tmp_path, bad, why):
    class Bad(CountingFeaturizer):
        def encode(self, texts, batch_size=64, show_progress=False):
            return bad(texts)

    with pytest.raises(TunesiftError, match=why) as info:
        featurize(FakeCorpus(TEXTS), Bad(), cache_dir=tmp_path)
    assert "counting-v1" in str(info.value)


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
    rows, buckets, lengths = ngram_buckets(["a b"], 1000)
    assert len(buckets) == 3 and lengths.tolist() == [2]  # a, b, "a b"
    assert ngram_buckets(["a b"], 1000)[1].tolist() == buckets.tolist()  # no salted hash()
    assert f.encode([""]).sum() == 0
    assert f.id == "ngrams-fast-b1000-l2" and f.dim == 1000


def test_ngrams_count_unigrams_and_ordered_bigrams():
    # wide: no collisions among these; sha256 so that the buckets can be computed here
    f = HashedNgrams(num_buckets=1 << 20, normalize=False, hash="sha256")
    v = f.encode(["Cats chase dogs, cats chase mice."])[0]
    grams = ["cats", "cats chase", "dogs ,", ","]
    bucket = {
        g: int.from_bytes(hashlib.sha256(g.encode()).digest(), "big") % (1 << 20) for g in grams
    }
    assert v[bucket["cats"]] == 2 and v[bucket["cats chase"]] == 2  # lowercased, counted
    assert v[bucket["dogs ,"]] == 1 and v[bucket[","]] == 1  # punctuation is a token
    assert v.sum() == 8 + 7  # 8 tokens, 7 bigrams
    w = f.encode(["chase cats"])[0]
    assert w[bucket["cats chase"]] == 0  # bigrams are ordered


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
    with pytest.raises(InputError, match="unknown featurizer") as info:
        get_featurizer("bert-huge", cache_dir=tmp_path)
    for choice in ("minilm", "static", "ngrams"):
        assert choice in str(info.value)
    assert isinstance(get_featurizer("ngrams", cache_dir=tmp_path, num_buckets=7), HashedNgrams)


def test_a_model_path_that_is_not_a_folder_is_named(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    for make in (
        lambda p: SentenceEncoder(str(p)),
        lambda p: get_featurizer(str(p), cache_dir=tmp_path),
    ):
        with pytest.raises(InputError, match="not a local sentence-transformers") as info:
            make(tmp_path / "model.bin")
        assert str(tmp_path / "model.bin") in str(info.value)


def test_minilm_id_names_its_vectors_without_loading_it():
    a = SentenceEncoder("minilm", device="cpu")
    b = SentenceEncoder("minilm", device="cpu", normalize=False)  # its pipeline normalizes anyway
    c = SentenceEncoder("minilm", device="cpu", max_seq_length=128)
    assert a.id.startswith("st:all-MiniLM-L6-v2:") and a.id.endswith(":msldefault:norm1")
    assert b.id == a.id and c.id != a.id and a._model is None


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
