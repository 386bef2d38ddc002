"""The language models GradEx fine-tunes, and the per-example output it linearizes.

Li, Zhang, Wang, Zhang (EMNLP 2024 Findings) write fine-tuning as a logistic problem in one
per-example output: f(x) = mean over the supervised tokens of the gold token's log-odds
log(p / (1 - p)); a token's cross-entropy is exactly softplus(-log-odds). This module holds

- ``ByteTokenizer`` and ``TinyLM``: a byte-level causal transformer small enough to train from
  scratch on a 2-core CPU in minutes (the tests' and benchmarks' model). Bytes need no vocabulary
  file, never fail on unseen text, and keep per-example gradients small (no 50k-row embedding);
- ``Example``: token ids plus where supervision starts (a prompt/response pair is supervised on
  the response only; a plain text on every token after the first);
- ``outputs``: f(x) for a batch, and ``lm_loss`` (token cross-entropy, the real fine-tuning loss);
- ``train``: seeded AdamW steps on a list of examples: the meta-initialization, the true
  fine-tunes ``validate`` compares against, and the final fine-tune on the chosen tasks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tunesift.errors import TunesiftError


@dataclass(frozen=True)
class Example:
    """Token ids and the index of the first supervised *target* token (>= 1)."""

    ids: tuple[int, ...]
    start: int = 1


class Tokenizer(Protocol):
    """What task files are encoded with: ``ByteTokenizer``, or ``tasks.hf.HFTokenizer``."""

    def encode(self, text: str, response: str | None = None, max_length: int = 128) -> Example: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens 0..255, a beginning-of-text token 256."""

    vocab_size = 257
    bos = 256

    def encode(self, text: str, response: str | None = None, max_length: int = 128) -> Example:
        """``text`` alone is supervised on every byte; with ``response``, only the response is
        (the cutting rules are ``make_example``'s)."""
        resp = None if response is None else list(response.encode("utf-8"))
        return make_example(self.bos, list(text.encode("utf-8")), resp, max_length)


def make_example(
    bos: int, prompt: list[int], response: list[int] | None, max_length: int
) -> Example:
    """BOS, then ``prompt`` (supervised when there is no response) and ``response``, in token ids.

    The sequence is cut to ``max_length`` tokens; a prompt that leaves no response token inside
    the window is cut from its left, so every example keeps at least one supervised token.
    """
    if max_length < 2:
        raise TunesiftError(f"max_length must be at least 2, got {max_length}")
    if response is None:
        return Example(tuple([bos, *prompt][:max_length]), 1)
    if not response:
        raise TunesiftError("an empty response has nothing to learn")
    keep = max(0, min(len(prompt), max_length - 1 - min(len(response), max_length // 2)))
    prompt = prompt[len(prompt) - keep :]
    return Example(tuple([bos, *prompt, *response][:max_length]), 1 + len(prompt))


@dataclass(frozen=True)
class TinyLMConfig:
    """Shape of a ``TinyLM``; ``seed`` draws its initial weights."""

    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 512
    context: int = 128
    vocab_size: int = ByteTokenizer.vocab_size
    seed: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class _Block(nn.Module):
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
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
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


def collate(
    examples: Sequence[Example], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (pad 0) and a mask over the *predicted* positions: mask[:, j] says
    whether token j+1 is supervised (the logits at j predict token j+1)."""
    width = max(len(e.ids) for e in examples)
    ids = torch.zeros((len(examples), width), dtype=torch.long)
    mask = torch.zeros((len(examples), width - 1), dtype=torch.bool)
    for i, e in enumerate(examples):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, e.start - 1 : len(e.ids) - 1] = True
    return ids.to(device), mask.to(device)


def token_logodds(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """log(p / (1 - p)) of each next gold token, (batch, time - 1)."""
    logp = F.log_softmax(model(ids[:, :-1]).float(), dim=-1)
    gold = logp.gather(-1, ids[:, 1:, None]).squeeze(-1).clamp(max=-1e-7)
    return gold - torch.log(-torch.expm1(gold))


def outputs(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """f(x): the mean log-odds over each example's supervised tokens (DESIGN §4.2)."""
    lo = token_logodds(model, ids)
    m = mask.to(lo.dtype)
    return (lo * m).sum(1) / m.sum(1).clamp(min=1)


def lm_loss(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token cross-entropy averaged over all supervised tokens of the batch."""
    logits = model(ids[:, :-1]).float()
    ce = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    m = mask.to(ce.dtype)
    return (ce * m).sum() / m.sum().clamp(min=1)


@torch.no_grad()
def evaluate_outputs(
    model: nn.Module, examples: Sequence[Example], batch_size: int = 64
) -> np.ndarray:
    """f(x) for every example, float64, in order."""
    model.eval()
    out = []
    for i in range(0, len(examples), batch_size):
        ids, mask = collate(examples[i : i + batch_size], next(model.parameters()).device)
        out.append(outputs(model, ids, mask).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


@torch.no_grad()
def token_loss(model: nn.Module, examples: Sequence[Example], batch_size: int = 64) -> float:
    """Token cross-entropy (nats per supervised token) over ``examples``."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        ids, mask = collate(examples[i : i + batch_size], next(model.parameters()).device)
        n = int(mask.sum())
        total += float(lm_loss(model, ids, mask)) * n
        count += n
    return total / max(count, 1)


def logistic_loss(f: np.ndarray) -> float:
    """mean softplus(-f): the loss GradEx estimates, in the output f (DESIGN §4.2, 4.4)."""
    return float(np.mean(np.logaddexp(0.0, -np.asarray(f, dtype=np.float64))))


@dataclass(frozen=True)
class TrainConfig:
    """Seeded AdamW fine-tuning: ``steps`` updates of ``batch_size`` examples drawn without
    replacement (reshuffled each pass), linear warm-up over ``warmup`` of the steps, then constant."""

    steps: int = 100
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: float = 0.1
    max_grad_norm: float = 1.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def train(
    model: nn.Module,
    examples: Sequence[Example],
    cfg: TrainConfig,
    seed: int,
    progress: bool = False,
    desc: str = "fine-tune",
) -> list[float]:
    """Fine-tune ``model`` in place on ``examples`` with token cross-entropy; the step losses."""
    if not examples:
        raise TunesiftError("nothing to train on: no examples")
    from tqdm.auto import tqdm

    rng = np.random.default_rng([seed, 0x7EA])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup * cfg.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    model.train()
    order: list[int] = []
    losses = []
    for _ in tqdm(range(cfg.steps), desc=desc, disable=not progress, leave=False):
        if len(order) < cfg.batch_size:
            order += rng.permutation(len(examples)).tolist()
        idx, order = order[: cfg.batch_size], order[cfg.batch_size :]
        ids, mask = collate([examples[i] for i in idx], device)
        loss = lm_loss(model, ids, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses
