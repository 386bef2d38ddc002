"""TinyLM: a byte-level causal transformer small enough to train from scratch on a 2-core CPU.

A pre-LayerNorm GPT-2-style decoder (Radford et al. 2019) with learned positions and an output
layer tied to the token embeddings; its initial weights come from ``TinyLMConfig.seed`` alone
(GPT-2's scheme: N(0, 0.02), the residual projections scaled by 1/sqrt(2 n_layers)). Bytes need
no vocabulary file and never fail on unseen text; GradEx's tests and benchmarks use it, and
``tunesift.tasks.lm.ByteTokenizer`` encodes for it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from tunesift.errors import TunesiftError

BYTE_VOCAB_SIZE = 257  # bytes 0..255 and a beginning-of-text token 256


@dataclass(frozen=True)
class TinyLMConfig:
    """Shape of a ``TinyLM``; ``seed`` draws its initial weights."""

    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 512
    context: int = 128
    vocab_size: int = BYTE_VOCAB_SIZE
    seed: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class Block(nn.Module):
    """Pre-LayerNorm attention and feed-forward, each a residual branch."""

    def __init__(self, cfg: TinyLMConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.ff1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.ff2 = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        shape = (b, t, self.n_heads, d // self.n_heads)
        q, k, v = (z.reshape(shape).transpose(1, 2) for z in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.ff2(F.gelu(self.ff1(self.ln2(x))))


class TinyLM(nn.Module):
    """A pre-LayerNorm GPT-style decoder with learned positions and a tied output layer."""

    def __init__(self, cfg: TinyLMConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or TinyLMConfig()
        if cfg.d_model % cfg.n_heads:
            raise TunesiftError("d_model must be a multiple of n_heads")
        gen = torch.Generator().manual_seed(cfg.seed)
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln = nn.LayerNorm(cfg.d_model)
        with torch.no_grad():  # GPT-2's initialization, from our own generator
            for name, p in self.named_parameters():
                if p.ndim == 2:
                    std = 0.02 / math.sqrt(2 * cfg.n_layers) if name.endswith(("proj.weight", "ff2.weight")) else 0.02  # fmt: skip
                    p.copy_(torch.randn(p.shape, generator=gen) * std)
                elif name.endswith("bias"):
                    p.zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (batch, time, vocab) for token ids (batch, time)."""
        t = ids.shape[1]
        if t > self.cfg.context:
            raise TunesiftError(
                f"sequence of {t} tokens is longer than the context {self.cfg.context}"
            )
        x = self.tok(ids) + self.pos(torch.arange(t, device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.ln(x) @ self.tok.weight.T
