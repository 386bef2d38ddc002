"""LoRA adapters on a transformers model (Hu et al., "LoRA: Low-Rank Adaptation of Large Language
Models", ICLR 2022), through ``peft``: W x + (alpha / r) B A x on the named linear layers, A
drawn at random and B zero, so the wrapped model starts exactly at the base model; only A and B
have ``requires_grad`` (the base weights are frozen and never modified)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tunesift.errors import TunesiftError
from tunesift.models.seeds import LORA_INIT, stream_seed


@dataclass(frozen=True)
class LoRASpec:
    """Where the adapters go and their size.

    Parameters
    ----------
    r : int
        Rank of the update B A.
    alpha : int
        Scale numerator: the update is scaled by ``alpha / r``.
    dropout : float
        Dropout on the adapter's input, in [0, 1).
    target_modules : tuple of str
        Names of the linear layers that get adapters (Llama layout: q_proj, k_proj, v_proj,
        o_proj, gate_proj, up_proj, down_proj); the default is the paper's q_proj and v_proj.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")

    def validate(self) -> None:
        """Raise a one-line ``TunesiftError`` for a value no adapter could use."""
        if self.r < 1:
            raise TunesiftError(
                f"lora_r must be at least 1, got {self.r} (method='full' trains every weight)"
            )
        if not self.alpha > 0 or not 0.0 <= self.dropout < 1.0:
            raise TunesiftError("lora_alpha must be positive and lora_dropout in [0, 1)")
        if not self.target_modules:
            raise TunesiftError("lora_target_modules must name at least one layer")


def linear_layer_names(model: nn.Module) -> set[str]:
    """The short names (last path component) of the model's ``nn.Linear`` layers."""
    return {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}


def wrap_lora(model: nn.Module, spec: LoRASpec, seed: int) -> nn.Module:
    """``model`` with LoRA adapters (a ``peft`` model; the base frozen), A drawn from ``seed``.

    A transformers model is wrapped as a causal LM; a plain ``nn.Module`` (``TinyLM``) as peft's
    generic model, which calls the module's own ``forward``.

    Raises ``TunesiftError`` when a target module names no linear layer of the model.
    """
    from peft import LoraConfig, get_peft_model

    spec.validate()
    names = linear_layer_names(model)
    missing = [t for t in spec.target_modules if t not in names]
    if missing:
        raise TunesiftError(
            f"the model has no linear layer named {missing[0]!r}; it has {', '.join(sorted(names))}"
        )
    lora = LoraConfig(
        r=int(spec.r),
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=list(spec.target_modules),
        bias="none",
        task_type="CAUSAL_LM" if getattr(model, "config", None) is not None else None,
    )
    torch.manual_seed(stream_seed(seed, LORA_INIT))  # LoRA's A matrices (B starts at zero)
    return get_peft_model(model, lora)


def trainable_count(model: nn.Module) -> int:
    """How many numbers training moves (the parameters with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
