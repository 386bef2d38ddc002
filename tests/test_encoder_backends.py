"""MiniLM's encoder backends: torch (sentence-transformers), ONNX Runtime float32 and int8.

The ONNX export runs once per test session, into the shared cache (``conftest.shared_cache``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunesift.cli.main import main
from tunesift.errors import TunesiftError
from tunesift.features.registry import get_featurizer
from tunesift.features.sentence import SentenceEncoder, folder_digest, minilm_path
from tunesift.features.store import cache_key

pytest.importorskip("onnxruntime")

TEXTS = [
    "A cat sat on the mat.",
    "Optimal transport moves mass from one distribution to another at the least cost.",
    "bearnaise: a sauce like hollandaise but made with white wine and tarragon and shallots "
    "instead of lemon juice",
    "x",
    " ".join(["long"] * 300),  # past MiniLM's 256 tokens: truncated by both backends
]


@pytest.fixture(scope="module")
def torch_vectors():
    return SentenceEncoder("minilm", device="cpu").encode(TEXTS, batch_size=2)


def test_the_torch_id_is_unchanged_and_the_backend_is_in_the_others():
    digest = folder_digest(minilm_path())
    ids = {
        b: SentenceEncoder("minilm", device="cpu", backend=b).id
        for b in ("torch", "onnx", "onnx-int8")
    }
    # the id of every earlier version, hence the cache keys of features already cached
    assert ids["torch"] == f"st:all-MiniLM-L6-v2:{digest}:msldefault:norm1"
    assert ids["onnx"].startswith(ids["torch"] + ":onnx-ort")
    assert ids["onnx-int8"].startswith(ids["torch"] + ":onnx-int8-ort")
    keys = {cache_key(i, "same corpus") for i in ids.values()}
    assert len(keys) == 3


def test_onnx_float32_agrees_with_torch(shared_cache, torch_vectors):
    enc = get_featurizer("minilm", cache_dir=shared_cache, device="cpu", backend="onnx")
    ours = enc.encode(TEXTS, batch_size=2)
    assert ours.dtype == np.float32 and ours.shape == torch_vectors.shape
    cos = (ours * torch_vectors).sum(1)  # both unit vectors
    assert cos.min() >= 0.9999, cos
    # padding does not leak into a text's vector: alone or in a batch of longer texts, the same
    alone = enc.encode([TEXTS[0]], batch_size=1)
    assert float(alone[0] @ ours[0]) >= 0.99999
    # the same texts twice: the same bytes (the cache may hold either run's)
    assert np.array_equal(enc.encode(TEXTS, batch_size=2), ours)


def test_onnx_int8_stays_close_to_torch(shared_cache, torch_vectors):
    enc = SentenceEncoder("minilm", device="cpu", backend="onnx-int8", cache_dir=shared_cache)
    cos = (enc.encode(TEXTS, batch_size=2) * torch_vectors).sum(1)
    # docs/benchmarks.md has the measured mean on the default data; a handful of texts is
    # only a guard against a broken quantization (the naive recipe gives ~0.9 here)
    assert cos.min() >= 0.98, cos


def test_export_is_made_once_and_reused(shared_cache):
    from tunesift.features.sentence_onnx import export_onnx

    first = export_onnx(minilm_path(), shared_cache, "onnx")
    stamp = first.stat().st_mtime_ns
    assert export_onnx(minilm_path(), shared_cache, "onnx") == first
    assert first.stat().st_mtime_ns == stamp
    assert not [p for p in first.parent.parent.iterdir() if p.name.startswith("onnx.")]  # no temp


def test_a_bad_backend_is_a_one_line_error_naming_the_parameter():
    with pytest.raises(TunesiftError, match="backend must be one of torch, onnx, onnx-int8") as e:
        SentenceEncoder("minilm", backend="tensorrt")
    assert e.value.param == "backend"
    with pytest.raises(TunesiftError, match="runs on the CPU"):
        SentenceEncoder("minilm", device="cuda", backend="onnx")


def _records(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def test_cli_flags_name_the_featurizer_parameter(tmp_path, capsys):
    pool = _records(tmp_path / "pool.jsonl", TEXTS)
    target = _records(tmp_path / "target.jsonl", TEXTS[:2])
    base = ["select", "--pool", str(pool), "--target", str(target), "--budget", "2", "-q"]
    out = ["--out", str(tmp_path / "s.jsonl"), "--cache-dir", str(tmp_path / "c")]
    assert main([*base, *out, "--featurizer-param", "backend=tensorrt"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--featurizer-param backend must be one of" in err, err
    assert main([*base, *out, "--featurizer-param", "colour=blue"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunesift: error: --featurizer-param: the minilm featurizer has no "
                          "parameter 'colour'"), err  # fmt: skip
    assert main([*base, *out, "--featurizer-param", "backend"]) == 2
    assert "--featurizer-param expects NAME=VALUE" in capsys.readouterr().err


def test_select_records_the_backend_in_the_sidecar_and_caches_apart(tmp_path, shared_cache):
    pool = _records(tmp_path / "pool.jsonl", TEXTS)
    target = _records(tmp_path / "target.jsonl", TEXTS[:2])
    metas = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.jsonl"
        rc = main(["select", "--pool", str(pool), "--target", str(target), "--budget", "2",
                   "--out", str(out), "--cache-dir", str(shared_cache), "-q",
                   "--featurizer-param", f"backend={backend}"])  # fmt: skip
        assert rc == 0
        metas[backend] = json.loads(out.with_name(out.name + ".meta.json").read_text())
    assert metas["torch"]["featurizer_backend"] == "torch"
    assert metas["onnx"]["featurizer_backend"] == "onnx"
    assert ":onnx-ort" in metas["onnx"]["featurizer"]
    assert ":onnx" not in metas["torch"]["featurizer"]
    folders = {m["features_cache"]["pool"] for m in metas.values()}
    assert len(folders) == 2
