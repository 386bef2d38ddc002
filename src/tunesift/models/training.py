"""One training loop for every model: AdamW, warm-up then linear decay (or constant), clipping.

Every stage that trains a model in this package (masked-LM pre-fine-tuning and its head warm-up,
the encoder classifier, continued causal-LM training, GradEx's meta-initialization and
fine-tunes) runs ``train_steps``: for each batch, the loss, ``zero_grad``, ``backward``, the
gradient norm clipped to ``max_grad_norm`` (Pascanu et al. 2013), an AdamW step (Loshchilov and
Hutter, ICLR 2019) and a scheduler step. What differs between the callers is a parameter here,
not a copy of the loop:

- the batches: ``epoch_batches`` (full passes, each a fresh seeded ``torch.randperm``, the last
  partial batch kept: the evaluation modes) or ``step_batches`` (a fixed number of steps drawn
  without replacement from a numpy generator, a batch may straddle two passes: GradEx);
- the schedule (``OptimConfig.decay``): linear warm-up over ``warmup_steps`` then linear decay to
  zero (BERT's), or warm-up then constant;
- weight decay on matrices only (``decay_matrices_only``; biases and LayerNorm gains are not
  decayed) or on every parameter.

The loop seeds torch's global RNG with ``seed`` before the first step (dropout masks), so a run
is a function of its seed and its batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesift.errors import TunesiftError


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and its learning-rate schedule.

    Parameters
    ----------
    lr : float
        Peak learning rate.
    weight_decay : float
        AdamW's decoupled weight decay.
    warmup_steps : int
        Steps of linear warm-up: update ``s`` (0-based) uses ``lr * (s + 1) / warmup_steps``.
    decay : "linear" or "constant"
        After the warm-up: linear decay to zero at the last step, or the peak rate.
    max_grad_norm : float
        The gradient norm is clipped to this before every step.
    decay_matrices_only : bool
        Weight decay on parameters of two or more dimensions only (True), or on all of them.
    """

    lr: float
    weight_decay: float = 0.0
    warmup_steps: int = 0
    decay: str = "linear"
    max_grad_norm: float = 1.0
    decay_matrices_only: bool = True

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise TunesiftError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or not self.max_grad_norm > 0:
            raise TunesiftError("weight_decay must be >= 0 and max_grad_norm > 0")
        if self.warmup_steps < 0:
            raise TunesiftError(f"warmup_steps must not be negative, got {self.warmup_steps}")
        if self.decay not in ("linear", "constant"):
            raise TunesiftError(f"decay must be 'linear' or 'constant', got {self.decay!r}")

    @classmethod
    def warmup_linear(
        cls,
        lr: float,
        n_steps: int,
        warmup_ratio: float,
        weight_decay: float = 0.0,
        max_grad_norm: float = 1.0,
    ) -> OptimConfig:
        """BERT's schedule for a run of ``n_steps``: ``round(warmup_ratio * n_steps)`` warm-up
        steps, then linear decay to zero; weight decay on matrices only."""
        return cls(
            lr=lr,
            weight_decay=weight_decay,
            warmup_steps=int(round(warmup_ratio * n_steps)),
            decay="linear",
            max_grad_norm=max_grad_norm,
            decay_matrices_only=True,
        )


def adamw(model: nn.Module, optim: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, weight decay as ``optim`` says."""
    if not optim.decay_matrices_only:
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": optim.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=optim.lr,
    )


def lr_factor(step: int, n_steps: int, warmup_steps: int, decay: str = "linear") -> float:
    """The multiplier of the peak rate for update number ``step`` (0-based) of ``n_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "constant":
        return 1.0
    return max(0.0, (n_steps - step) / max(1, n_steps - warmup_steps))


def scheduler(
    opt: torch.optim.Optimizer, n_steps: int, optim: OptimConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """``lr_factor`` as a torch scheduler (stepped once after every update)."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, n_steps, optim.warmup_steps, optim.decay)
    )


# ------------------------------------------------------------------------------------ batching


def epoch_batches(
    n: int, batch_size: int, epochs: int, generator: torch.Generator
) -> list[list[int]]:
    """Index batches for ``epochs`` passes over ``n`` items, each pass a fresh seeded shuffle;
    the last partial batch of a pass is kept."""
    out: list[list[int]] = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).tolist()
        out.extend(order[i : i + batch_size] for i in range(0, n, batch_size))
    return out


def step_batches(n: int, batch_size: int, steps: int, rng: np.random.Generator) -> list[list[int]]:
    """``steps`` batches of ``batch_size`` drawn without replacement, reshuffling (from ``rng``)
    whenever fewer than a batch are left, so a batch may straddle two passes."""
    order: list[int] = []
    out: list[list[int]] = []
    for _ in range(steps):
        if len(order) < batch_size:
            order += rng.permutation(n).tolist()
        out.append(order[:batch_size])
        order = order[batch_size:]
    return out


def tokenize_rows(tok: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text with the tokenizer's special tokens, truncated to ``max_length``."""
    enc = tok(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)
    return [list(ids) for ids in enc["input_ids"]]


def pad_rows(rows: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and the attention mask (1 on real tokens) of a batch of rows."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def progress_bar(total: int, desc: str, show: bool) -> Any:
    """A tqdm bar over training steps (disabled unless ``show``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, disable=not show)


# ---------------------------------------------------------------------------------------- loop


@contextmanager
def train_only(model: nn.Module, names: Iterable[str]) -> Iterator[None]:
    """Only the parameters called ``names`` have ``requires_grad`` in the block (the rest are
    frozen); every parameter's flag is restored afterwards."""
    keep = set(names)
    saved = {name: p.requires_grad for name, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.requires_grad_(name in keep)
    try:
        yield
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(saved[name])


def train_steps(
    model: nn.Module,
    batches: Sequence[list[int]],
    make_batch: Callable[[list[int]], tuple[torch.Tensor, ...]],
    loss_of: Callable[..., torch.Tensor],
    optim: OptimConfig,
    *,
    seed: int,
    device: torch.device | str | None = None,
    desc: str = "training",
    show_progress: bool = False,
    on_step: Callable[[int, torch.optim.Optimizer], None] | None = None,
) -> list[float]:
    """Train ``model`` in place, one AdamW step per batch; returns each step's loss.

    Parameters
    ----------
    model : nn.Module
        Only parameters with ``requires_grad`` move. Left in train mode.
    batches : sequence of index lists
        From ``epoch_batches`` or ``step_batches``; their number sets the schedule's length.
    make_batch : callable
        Index list -> tensors; they are moved to ``device`` (when given) and passed to ``loss_of``.
    loss_of : callable
        ``loss_of(model, *tensors)`` -> the scalar loss.
    optim : OptimConfig
    seed : int
        Seeds torch's global RNG before the first step (dropout masks).
    device : torch.device, str or None
        Where the batch tensors go (None: where ``make_batch`` put them).
    desc, show_progress : str, bool
        A tqdm bar.
    on_step : callable or None
        ``on_step(step, optimizer)`` after update ``step`` (0-based): what a caller keeps of the
        run between updates (LESS's checkpoints: the weights and AdamW's moments at an epoch's end).

    Raises
    ------
    TunesiftError
        When a step's loss is not finite (the rate is too high for this model).
    """
    torch.manual_seed(seed)  # dropout masks
    losses: list[float] = []
    if not batches:
        return losses
    opt = adamw(model, optim)
    sched = scheduler(opt, len(batches), optim)
    model.train()
    bar = progress_bar(len(batches), desc, show_progress)
    try:
        for idx in batches:
            tensors = make_batch(idx)
            if device is not None:
                tensors = tuple(t.to(device) for t in tensors)
            loss = loss_of(model, *tensors)
            if not torch.isfinite(loss):
                raise TunesiftError(
                    f"{desc}: the loss became {float(loss.detach())}; lower the rate"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), optim.max_grad_norm)
            opt.step()
            sched.step()
            if on_step is not None:
                on_step(len(losses), opt)
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    finally:
        bar.close()
    return losses
