"""The language models GradEx fine-tunes, and the per-example output it linearizes.

Li, Zhang, Wang, Zhang (EMNLP 2024 Findings) write fine-tuning as a logistic problem in one
per-example output: f(x) = mean over the supervised tokens of the gold token's log-odds
log(p / (1 - p)); a token's cross-entropy is exactly softplus(-log-odds). This module holds

- ``ByteTokenizer`` for ``TinyLM`` (``tunesift.models.tinylm``): a byte-level causal transformer
  small enough to train from scratch on a 2-core CPU in minutes (the tests' and benchmarks'
  model). Bytes need no vocabulary file, never fail on unseen text, and keep per-example
  gradients small (no 50k-row embedding);
- ``Example``: token ids plus where supervision starts (a prompt/response pair is supervised on
  the response only; a plain text on every token after the first);
- ``outputs``: f(x) for a batch, and ``lm_loss`` (token cross-entropy, the real fine-tuning loss);
- ``train``: seeded AdamW steps on a list of examples (the package's one training loop, with
  GradEx's batching): the meta-initialization, the true fine-tunes ``validate`` compares
  against, and the final fine-tune on the chosen tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tunesift.errors import TunesiftError
from tunesift.models.tinylm import BYTE_VOCAB_SIZE, TinyLM, TinyLMConfig
from tunesift.models.training import OptimConfig, step_batches, train_steps

__all__ = [
    "ByteTokenizer",
    "Example",
    "TinyLM",
    "TinyLMConfig",
    "TrainConfig",
    "collate",
    "evaluate_outputs",
    "lm_loss",
    "logistic_loss",
    "make_example",
    "outputs",
    "token_logodds",
    "token_loss",
    "train",
]


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

    vocab_size = BYTE_VOCAB_SIZE
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
    """Fine-tune ``model`` in place on ``examples`` with token cross-entropy; the step losses.

    The loop is ``tunesift.models.training.train_steps``; what is GradEx's own is the batching
    (``step_batches`` from ``numpy.random.default_rng([seed, 0x7EA])``: a fixed number of steps,
    a batch may straddle two passes), the constant rate after the warm-up of
    ``max(1, int(warmup * steps))`` steps, and weight decay on every parameter.
    """
    if not examples:
        raise TunesiftError("nothing to train on: no examples")
    batches = step_batches(
        len(examples), cfg.batch_size, cfg.steps, np.random.default_rng([seed, 0x7EA])
    )
    optim = OptimConfig(
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=max(1, int(cfg.warmup * cfg.steps)),
        decay="constant",
        max_grad_norm=cfg.max_grad_norm,
        decay_matrices_only=False,
    )
    device = next(model.parameters()).device
    losses = train_steps(
        model,
        batches,
        lambda idx: collate([examples[i] for i in idx], device),
        lm_loss,
        optim,
        seed=seed,
        desc=desc,
        show_progress=progress,
    )
    model.eval()
    return losses
