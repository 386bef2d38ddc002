"""Sentence encoders (sentence-transformers), MiniLM by default, loaded from local folders only."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from tunesift.errors import InputError, TunesiftError
from tunesift.features.sentence_onnx import BACKENDS, ONNX_BACKENDS
from tunesift.models.device import resolve_device
from tunesift.models.loaders import minilm_path as minilm_path  # public here as before
from tunesift.paths import default_cache_dir

# the torch backend's compute precisions, with their tags in the featurizer id
DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def folder_digest(path: Path) -> str:
    """A cheap fingerprint of a model folder: config files' bytes and weight files' sizes."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = str(f.relative_to(path))
        if f.suffix in (".json", ".txt", ".model") and f.stat().st_size < 5_000_000:
            h.update(rel.encode() + b"\0" + f.read_bytes())
        else:
            h.update(f"{rel}\0{f.stat().st_size}".encode())
    return h.hexdigest()[:12]


def has_normalize_module(path: Path) -> bool:
    """Whether the model's own pipeline ends in L2 normalization (MiniLM's does: ``2_Normalize``).

    Such a model returns unit vectors even with ``normalize=False``, so the featurizer id must say
    ``norm1`` for it: the id names the vectors, not the flag.
    """
    try:
        modules = json.loads((path / "modules.json").read_text())
    except (OSError, ValueError):
        return False
    return any(
        isinstance(m, dict) and str(m.get("type", "")).endswith(".Normalize") for m in modules
    )


class SentenceEncoder:
    """A local sentence-transformers model: ``encode`` = its pooling (masked mean for MiniLM).

    GOT-D's official notebooks mean-pool over padding tokens too, which makes a text's vector
    depend on the batch it was padded in; sentence-transformers masks padding, and a test pins
    that against a manual masked mean of the transformer's last hidden state.

    ``max_seq_length=None`` keeps the model's own limit (256 tokens for MiniLM, from its
    ``sentence_bert_config.json``); longer texts are truncated. ``normalize`` asks
    sentence-transformers for unit vectors; a model whose pipeline already normalizes (MiniLM)
    gives unit vectors either way, and its id says so.

    ``backend`` runs the model with sentence-transformers on torch (``"torch"``, the id of
    earlier versions, unchanged), or with ONNX Runtime on the CPU: ``"onnx"`` (float32, the
    same vectors to ~1e-7) or ``"onnx-int8"`` (int8 weight MatMuls; measured quality in
    docs/benchmarks.md). The ONNX model is exported once into ``cache_dir``
    (``features/sentence_onnx.py``); the backend is part of the id, hence of the cache key.

    ``dtype`` runs the torch backend's model in ``"float32"`` (default), ``"float16"`` or
    ``"bfloat16"`` (meant for CUDA, where half precision is several times faster; measured
    speed and cosine to float32 in docs/benchmarks.md). The weights are cast to it whatever
    precision the folder stores them in, and a half-precision dtype is part of the id.
    """

    def __init__(
        self,
        model: str = "minilm",
        device: str = "auto",
        max_seq_length: int | None = None,
        normalize: bool = True,
        backend: str = "torch",
        cache_dir: Path | None = None,
        dtype: str = "float32",
    ):
        if dtype not in DTYPES:
            raise TunesiftError(
                f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}",
                param="dtype",
                func="SentenceEncoder",
            )
        if dtype != "float32" and backend != "torch":
            raise TunesiftError(
                f"dtype {dtype} needs backend=torch (the {backend} backend has its own precision)",
                param="dtype",
                func="SentenceEncoder",
            )
        if backend not in BACKENDS:
            raise TunesiftError(
                f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}",
                param="backend",
                func="SentenceEncoder",
            )
        if backend in ONNX_BACKENDS and device == "cuda":
            raise TunesiftError(
                f"backend {backend} runs on the CPU; on a GPU use backend=torch",
                param="backend",
                func="SentenceEncoder",
            )
        path = minilm_path() if model == "minilm" else Path(model)
        if not path.is_dir():
            raise InputError("not a local sentence-transformers model folder", path)
        self.path = path
        self.name = "all-MiniLM-L6-v2" if model == "minilm" else str(path.resolve())
        self.device = device
        self.max_seq_length = max_seq_length
        self.normalize = normalize
        self.backend = backend
        self.dtype = dtype
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        msl = max_seq_length if max_seq_length is not None else "default"
        unit = normalize or has_normalize_module(path)
        self.id = f"st:{self.name}:{folder_digest(path)}:msl{msl}:norm{int(unit)}"
        if backend != "torch":  # the torch id stays as it was: existing caches keep their keys
            from tunesift.features.sentence_onnx import runtime_tag

            self.id += f":{backend}-{runtime_tag()}"
        if dtype != "float32":  # float32 keeps the id of earlier versions
            self.id += f":{DTYPES[dtype]}"
        self._model = None
        self._onnx = None

    def __getstate__(self) -> dict[str, object]:
        # A copy sent to another process (a Ray worker) loads the model there, on first use:
        # the weights do not travel, and the bundled MiniLM is found in that machine's install.
        state = self.__dict__.copy()
        state["_model"] = None
        state["_onnx"] = None
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        if self.name == "all-MiniLM-L6-v2":
            self.path = minilm_path()

    @property
    def model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.utils.logging.disable_progress_bar()  # "Loading weights" on every run

            try:
                self._model = SentenceTransformer(
                    str(self.path), device=str(resolve_device(self.device))
                )
            except (OSError, ValueError) as exc:
                raise InputError(
                    f"cannot load a sentence-transformers model: {exc}", self.path
                ) from None
            if self.max_seq_length is not None:
                self._model.max_seq_length = self.max_seq_length
            import torch

            self._model.to(getattr(torch, self.dtype))  # a no-op for float32 weights
        return self._model

    def onnx_model(self):
        """The ONNX Runtime model of an ``onnx*`` backend, exported into the cache on first use."""
        if self._onnx is None:
            from tunesift.features.sentence_onnx import OnnxSentenceModel, export_onnx

            onnx_file = export_onnx(self.path, self.cache_dir, self.backend)
            self._onnx = OnnxSentenceModel(
                onnx_file, self.path, self.seq_length(), normalize=self.normalize
            )
        return self._onnx

    def seq_length(self) -> int:
        """The truncation length: ``max_seq_length``, else the model's own (sentence-transformers'
        rule: ``sentence_bert_config.json``, else the tokenizer's and the position table's)."""
        if self.max_seq_length is not None:
            return int(self.max_seq_length)
        if self.backend == "torch":
            return int(self.model.max_seq_length)
        for name, key in (
            ("sentence_bert_config.json", "max_seq_length"),
            ("config.json", "max_position_embeddings"),
        ):
            try:
                value = json.loads((self.path / name).read_text()).get(key)
            except (OSError, ValueError):
                continue
            if isinstance(value, int) and value > 0:
                return value
        return 512

    @property
    def batch_size(self) -> int:
        """Measured on the 2-core CPU (benchmarks/featurize_throughput.py --sweep): batch 16 gave
        79 docs/s against 61-67 at 64 and 51-53 at 128 (less padding per batch); on one H200
        (benchmarks/gpu_embed.py, float32) batch 256 gave 4,239 docs/s against 3,783 at 128 and
        3,969 at 512. ONNX: batch 16 as well (the same padding)."""
        if self.backend != "torch":
            return 16
        return 16 if resolve_device(self.device).type == "cpu" else 256

    @property
    def dim(self) -> int:
        if self.backend != "torch":
            return int(self.onnx_model().encode(["a"], 1).shape[1])
        model = self.model
        get_dim = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(get_dim())

    def encode(
        self, texts: list[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.backend != "torch":
            return self.onnx_model().encode(texts, batch_size)
        vecs = self.model.encode(
            texts,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=show_progress,
        )
        return np.asarray(vecs, dtype=np.float32)
