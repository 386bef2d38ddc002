"""The ONNX Runtime backends of the sentence encoder: the same model, exported once, run faster.

``backend="onnx"`` runs the model's transformer, exported from the local folder with
``torch.onnx`` (the TorchScript exporter, ``dynamo=False``: 10 s against 75 s for the dynamo
exporter on 2 busy cores, and the graph ONNX Runtime's BERT fusions recognise), then fused by
``onnxruntime.transformers.optimizer`` (attention, embedding + layer norm, skip + layer norm,
bias + GELU: float32 arithmetic, same model). ``backend="onnx-int8"`` is that graph with dynamic
int8 quantization of the weight MatMuls, per output channel (``quantize_dynamic(per_channel=
True, op_types_to_quantize=["MatMul"])``); the word embeddings, attention's activation products,
layer norms and GELU stay float32. docs/benchmarks.md has the measured quality of each (cosine
to torch, GOT-D top-500 Jaccard) and the variants that lost too much.

Tokenization is the model's ``tokenizer.json`` read with the ``tokenizers`` library (what
transformers' fast tokenizer wraps), truncated at the encoder's ``max_seq_length`` and padded to
the longest text of each batch; texts are batched in order of length, as sentence-transformers
does. Pooling (masked mean, or the CLS token) and the L2 normalization are done here in float32,
from the folder's ``1_Pooling/config.json`` and ``modules.json``: the same pipeline as the torch
path, so float32 ONNX vectors agree with it to ~1e-7.

Exports are cached under ``<cache>/models/onnx/<key>/<variant>/model.onnx``, where the key hashes
every byte of the model folder, the torch and onnxruntime versions and ``EXPORT_FORMAT``; each
variant is built in a temporary folder and renamed into place (a second process that finishes
first wins; its copy is kept). The model is read from the local folder only: nothing is
downloaded. Importing this module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.outputs import build_folder_atomic

logger = logging.getLogger(__name__)

#: the backends of ``SentenceEncoder``: torch (sentence-transformers), and the ONNX Runtime ones
BACKENDS = ("torch", "onnx", "onnx-int8")
ONNX_BACKENDS = ("onnx", "onnx-int8")
#: part of every export key and ONNX featurizer id: bump it when the export recipe changes
EXPORT_FORMAT = 1
MODEL_FILE = "model.onnx"
_EXTRA_HINT = "install the onnx extra: pip install 'tunesift[onnx]'"


def package_version(name: str) -> str:
    """The installed version of ``name`` (no import), or a one-line error naming the extra."""
    try:
        return version(name)
    except PackageNotFoundError:
        raise TunesiftError(
            f"backend onnx needs the {name} package: {_EXTRA_HINT}", param="backend"
        ) from None


def runtime_tag() -> str:
    """What, besides the model, decides the ONNX vectors: the exporter, the runtime, the recipe."""
    return (
        f"ort{package_version('onnxruntime')}-torch{package_version('torch').split('+')[0]}"
        f"-x{EXPORT_FORMAT}"
    )


def model_bytes_digest(path: Path) -> str:
    """sha256 over every file of a model folder (names and bytes): the export's key.

    The featurizer id keeps its cheaper folder digest (weights by size); an export, which is
    reused without looking at the weights again, must not survive a fine-tune of the same size.
    """
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:16]


def pipeline_of(path: Path) -> tuple[str, bool]:
    """``(pooling, normalize)`` of a sentence-transformers folder: ``"mean"`` or ``"cls"``, and
    whether its modules end in ``Normalize``. Other pipelines (max pooling, a Dense layer) are
    refused: the ONNX backends reproduce only these. A folder without ``modules.json`` is a bare
    transformers model, which sentence-transformers mean-pools."""
    if not (path / "modules.json").exists():
        return "mean", False
    try:
        modules = json.loads((path / "modules.json").read_text())
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
        pool_dir = next(m.get("path", "") for m in modules if kinds[modules.index(m)] == "Pooling")
        cfg = json.loads((path / pool_dir / "config.json").read_text())
    except (OSError, ValueError, AttributeError, StopIteration, TypeError):
        raise TunesiftError(
            f"backend onnx cannot read the pooling of {path} (modules.json, its Pooling "
            "config.json); use backend=torch",
            param="backend",
            func="SentenceEncoder",
        ) from None
    modes = sorted(k for k, v in cfg.items() if k.startswith("pooling_mode") and v is True)
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        modes = ["unsupported modules"]
    if modes not in (["pooling_mode_mean_tokens"], ["pooling_mode_cls_token"]):
        raise TunesiftError(
            f"backend onnx runs Transformer -> mean or CLS Pooling [-> Normalize], not {kinds} "
            f"with {modes} ({path}); use backend=torch",
            param="backend",
            func="SentenceEncoder",
        )
    return ("cls" if modes == ["pooling_mode_cls_token"] else "mean"), "Normalize" in kinds[2:]


def export_float32(model_path: Path, out: Path, fuse: bool = True) -> None:
    """The transformer's last hidden state as ``out/model.onnx`` (dynamic batch and length),
    fused unless ``fuse=False`` (benchmarks/encoder_backends.py measures both)."""
    import torch

    from tunesift.models.loaders import load_encoder_body

    # eager attention applies the mask on every input; SDPA may drop an all-ones mask while
    # tracing, which would bake "no padding" into the graph
    body = load_encoder_body(model_path, attn_implementation="eager").eval()
    takes_types = "token_type_ids" in _forward_params(body)

    class Body(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = body

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            kw = dict(zip(names, inputs, strict=True))
            return self.body(**kw).last_hidden_state

    names = ["input_ids", "attention_mask", *(["token_type_ids"] if takes_types else [])]
    ids = torch.full((2, 16), 1000, dtype=torch.long)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 9:] = 0  # trace with padding, so the mask's path is in the graph
    example = (ids, mask, *([torch.zeros_like(ids)] if takes_types else []))
    raw = out / "raw.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter's deprecation notice and tracer warnings: the tests check
        # the graph against torch on batches of other sizes and lengths than the traced one
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Body(),
            example,
            str(raw),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )
    cfg: Any = body.config  # a transformers PretrainedConfig
    if not fuse:
        os.replace(raw, out / MODEL_FILE)
        return
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        opt = optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(cfg.num_attention_heads),
            hidden_size=int(cfg.hidden_size),
            opt_level=1,
        )
        opt.save_model_to_file(str(out / MODEL_FILE))
        raw.unlink()
    except Exception as exc:  # an architecture the fusions do not know: the plain graph is right
        logger.warning("ONNX fusion failed (%s); using the unfused graph", exc)
        os.replace(raw, out / MODEL_FILE)


def _forward_params(module: Any) -> list[str]:
    import inspect

    return list(inspect.signature(module.forward).parameters)


def quantize_int8(
    src: Path, out: Path, per_channel: bool = True, op_types: tuple[str, ...] | None = ("MatMul",)
) -> None:
    """Dynamic int8 quantization of ``src`` into ``out/model.onnx``: by default per output
    channel, the weight MatMuls only (the ``onnx-int8`` backend); ``op_types=None`` quantizes
    every op ONNX Runtime can (the word-embedding Gather too), ``per_channel=False`` one scale
    per tensor: the lossier variants docs/benchmarks.md measures."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(out / MODEL_FILE),
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        op_types_to_quantize=list(op_types) if op_types is not None else None,
        # the fused graph's com.microsoft ops give the quantizer no output types to infer
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def export_onnx(model_path: Path, cache_dir: Path, backend: str) -> Path:
    """The ``backend``'s ONNX file for the model folder, exported (and quantized) once."""
    package_version("onnx")
    root = Path(cache_dir) / "models" / "onnx" / f"{model_bytes_digest(model_path)}-{runtime_tag()}"
    logger.info("ONNX export of %s in %s", model_path, root)
    fp32 = build_folder_atomic(
        root / "onnx", lambda tmp: export_float32(model_path, tmp), MODEL_FILE
    )
    if backend == "onnx":
        return fp32 / MODEL_FILE
    int8 = build_folder_atomic(
        root / backend, lambda tmp: quantize_int8(fp32 / MODEL_FILE, tmp), MODEL_FILE
    )
    return int8 / MODEL_FILE


def ort_threads() -> int:
    """Threads for ONNX Runtime: ``OMP_NUM_THREADS`` when set (the setting torch also reads), else
    0, ONNX Runtime's default of one per physical core (torch's default too)."""
    raw = os.environ.get("OMP_NUM_THREADS", "")
    try:
        return max(int(raw), 0)
    except ValueError:
        return 0


class OnnxSentenceModel:
    """An exported sentence encoder run by ONNX Runtime: tokenize, run, pool, normalize."""

    def __init__(self, onnx_file: Path, model_path: Path, max_seq_length: int, normalize: bool):
        package_version("onnxruntime")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tok_file = model_path / "tokenizer.json"
        if not tok_file.is_file():
            raise TunesiftError(
                f"backend onnx needs the model's tokenizer.json, not in {model_path}",
                param="backend",
                func="SentenceEncoder",
            )
        self.tokenizer = Tokenizer.from_file(str(tok_file))
        self.pad_id = int((self.tokenizer.padding or {}).get("pad_id", 0))
        # tokenizer.json may fix a length of its own (MiniLM's says 128): ours wins, and each
        # batch is padded below to its longest text
        self.tokenizer.enable_truncation(max_length=max_seq_length)
        self.tokenizer.no_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = ort_threads()
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(onnx_file), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.pooling, model_normalizes = pipeline_of(model_path)
        self.normalize = normalize or model_normalizes

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(-lengths, kind="stable")  # longest first, as sentence-transformers
        out: np.ndarray | None = None
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            longest = int(lengths[rows].max())
            ids = np.full((len(rows), longest), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), longest), dtype=np.int64)
            types = np.zeros((len(rows), longest), dtype=np.int64)
            for r, i in enumerate(rows):
                e = encodings[i]
                ids[r, : len(e.ids)] = e.ids
                mask[r, : len(e.ids)] = 1
                types[r, : len(e.ids)] = e.type_ids
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = types
            hidden = self.session.run(None, feed)[0]
            vecs = self._pool(hidden, mask)
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[rows] = vecs
        assert out is not None  # texts is not empty
        return out

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.pooling == "cls":
            vecs = hidden[:, 0].astype(np.float32)
        else:  # masked mean, as sentence-transformers' Pooling (its 1e-9 floor included)
            m = mask[:, :, None].astype(np.float32)
            vecs = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        if self.normalize:  # torch.nn.functional.normalize: x / max(||x||, 1e-12)
            vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vecs, dtype=np.float32)
