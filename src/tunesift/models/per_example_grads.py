"""Per-example gradients of a causal LM's LoRA parameters: the features of LESS and TAGCOS.

LESS (Xia et al. 2024) and TAGCOS (Zhang et al. 2024) describe each text by the gradient of its
own loss with respect to the LoRA adapters of a briefly warmed-up model, preconditioned by the
warm-up optimizer's Adam moments, randomly projected and unit-normalized. This module holds the
shared parts, written once:

- ``load_scoring_lm``: the model whose gradients are taken (``"tinylm"``: a byte-level
  ``TinyLM`` drawn from the seed, for tests; ``"smollm2"``: SmolLM2-135M-Instruct from the local
  package; or a local causal-LM folder), LoRA-wrapped, with its encoder of texts into token ids;
- ``warmup``: LoRA training on a few texts with the package's one loop (AdamW, linear warm-up
  then linear decay), keeping a ``Checkpoint`` at the end of every epoch: the adapter weights,
  AdamW's first and second moments, and the epoch's mean learning rate (LESS's checkpoint
  weight);
- ``gradient_features``: for each text, the gradient of its mean next-token cross-entropy (one
  text per backward pass: exact, deterministic on the CPU), optionally Adam-preconditioned
  (``adam_direction``), projected with the package's one ``Projector`` and unit-normalized;
- ``log_odds_gradients``: DsDm's (TRAK's) features instead: the gradient of a text's mean
  per-token log-odds of the true token, and its out-to-loss weight (mean of 1 - p).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tunesift.errors import TunesiftError
from tunesift.models.lora import LoRASpec, wrap_lora
from tunesift.models.projection import Projector
from tunesift.models.seeds import SHUFFLE, generator
from tunesift.models.training import OptimConfig, epoch_batches, lr_factor, train_steps

#: what ``model`` may name besides a local causal-LM folder
BUILTIN_MODELS = ("tinylm", "smollm2")
#: LoRA's target layers when none are named: the attention projections (LESS's q, k, v, o)
ATTENTION_LAYERS = {
    "tinylm": ("qkv", "proj"),
    "causal": ("q_proj", "k_proj", "v_proj", "o_proj"),
}
#: AdamW's defaults (torch's and transformers'), which the warm-up uses and LESS's update reads
ADAM_BETAS = (0.9, 0.999)
#: added under the square root of the second moment, as in LESS's ``obtain_gradients_with_adam``
ADAM_EPS = 1e-8
_BOS = 256


@dataclass
class ScoringLM:
    """A LoRA-wrapped causal LM, how it reads texts, and the padding id of its batches."""

    model: nn.Module
    encode: Callable[[str], list[int]]
    pad_id: int
    byte_level: bool

    def logits(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.byte_level:
            return self.model(ids)
        return self.model(input_ids=ids, attention_mask=mask).logits

    def loss(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy over the real tokens of the batch (padding ignored)."""
        logits = self.logits(ids, mask)[:, :-1].float()
        labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        return F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100)


def load_scoring_lm(
    model: str, *, max_length: int, lora: LoRASpec, seed: int, device: torch.device
) -> ScoringLM:
    """The LoRA-wrapped model ``model`` names, on ``device``, and its text encoder.

    ``lora.target_modules`` empty means the model's attention projections
    (``ATTENTION_LAYERS``). A ``TinyLM`` reads UTF-8 bytes after a beginning-of-text token; other
    models their own tokenizer with its special tokens. Texts are cut to ``max_length`` tokens.
    """
    from tunesift.models.loaders import (
        causal_lm_path,
        load_causal_lm,
        load_causal_tokenizer_from,
    )
    from tunesift.models.tinylm import TinyLM, TinyLMConfig

    if max_length < 2:
        raise TunesiftError(f"max_length must be at least 2, got {max_length}", param="max_length")
    base: nn.Module
    if model == "tinylm":
        base = TinyLM(TinyLMConfig(context=max_length, seed=seed))
        kind = "tinylm"

        def encode(text: str) -> list[int]:
            return [_BOS, *text.encode("utf-8")][:max_length]

        pad_id = 0
    else:
        path = causal_lm_path(None if model == "smollm2" else model)
        base = load_causal_lm(path)
        tok = load_causal_tokenizer_from(path, exact=model == "smollm2")
        kind = "causal"

        def encode(text: str) -> list[int]:
            ids = tok(text, truncation=True, max_length=max_length, add_special_tokens=True)
            return list(ids["input_ids"])

        pad_id = int(tok.pad_token_id)
    if not lora.target_modules:
        lora = LoRASpec(lora.r, lora.alpha, lora.dropout, ATTENTION_LAYERS[kind])
    with torch.random.fork_rng(devices=[]):
        wrapped = wrap_lora(base, lora, seed)
    return ScoringLM(wrapped.to(device), encode, pad_id, byte_level=kind == "tinylm")


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters training moves (the LoRA adapters), in ``named_parameters`` order."""
    return [p for _, p in model.named_parameters() if p.requires_grad]


def flat_trainable(model: nn.Module) -> np.ndarray:
    """The trainable parameters, concatenated (float32, a copy)."""
    return torch.cat(
        [p.detach().reshape(-1).float().cpu() for p in trainable_parameters(model)]
    ).numpy()


def load_flat_trainable(model: nn.Module, flat: np.ndarray) -> None:
    """Set the trainable parameters from ``flat_trainable``'s layout."""
    params = trainable_parameters(model)
    if sum(p.numel() for p in params) != len(flat):
        raise TunesiftError("the saved adapter weights do not fit the model's LoRA parameters")
    at = 0
    with torch.no_grad():
        for p in params:
            p.copy_(torch.from_numpy(np.asarray(flat[at : at + p.numel()])).reshape(p.shape))
            at += p.numel()


def pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and the mask of real tokens."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


@dataclass
class Checkpoint:
    """The warm-up at the end of one epoch: adapter weights, AdamW's moments, the mean rate."""

    step: int
    weights: np.ndarray
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray
    mean_lr: float


def warmup(
    lm: ScoringLM,
    rows: Sequence[list[int]],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    warmup_ratio: float,
    seed: int,
    device: torch.device,
    show_progress: bool = False,
) -> tuple[list[Checkpoint], list[float]]:
    """Train the adapters on ``rows`` for ``epochs`` passes; a ``Checkpoint`` after each pass.

    AdamW without weight decay, warm-up over ``round(warmup_ratio * steps)`` updates then linear
    decay to zero (LESS's ``--lr_scheduler_type linear --warmup_ratio 0.03``), gradient norm
    clipped at 1 (transformers' default), batches from a seeded shuffle of every epoch. A
    checkpoint's ``mean_lr`` is the mean rate of its epoch's updates (LESS's checkpoint weight,
    "the average learning rate of the epoch"). Returns the checkpoints and every step's loss.
    """
    rows = [r for r in rows if len(r) >= 2]
    if not rows:
        raise TunesiftError("no warm-up text has two tokens: LESS needs text to train on")
    batches = epoch_batches(len(rows), batch_size, epochs, generator(seed, SHUFFLE))
    per_epoch = -(-len(rows) // batch_size)
    optim = OptimConfig.warmup_linear(lr, len(batches), warmup_ratio, weight_decay=0.0)
    params = trainable_parameters(lm.model)
    checkpoints: list[Checkpoint] = []

    def keep(step: int, opt: torch.optim.Optimizer) -> None:
        if (step + 1) % per_epoch:
            return
        first = step + 1 - per_epoch
        rates = [
            lr * lr_factor(s, len(batches), optim.warmup_steps, optim.decay)
            for s in range(first, step + 1)
        ]
        moments = [opt.state.get(p, {}) for p in params]
        checkpoints.append(
            Checkpoint(
                step=step + 1,
                weights=flat_trainable(lm.model),
                exp_avg=_flat_state(moments, params, "exp_avg"),
                exp_avg_sq=_flat_state(moments, params, "exp_avg_sq"),
                mean_lr=float(np.mean(rates)),
            )
        )

    losses = train_steps(
        lm.model,
        batches,
        lambda idx: pad([rows[i] for i in idx], lm.pad_id),
        lambda _model, ids, mask: lm.loss(ids, mask),
        optim,
        seed=seed,
        device=device,
        desc="LoRA warm-up",
        show_progress=show_progress,
        on_step=keep,
    )
    lm.model.eval()
    return checkpoints, losses


def _flat_state(moments: list[dict[str, Any]], params: list[nn.Parameter], key: str) -> np.ndarray:
    parts = [
        m[key].reshape(-1).float().cpu() if key in m else torch.zeros(p.numel())
        for m, p in zip(moments, params, strict=True)
    ]
    return torch.cat(parts).numpy().copy()


def adam_direction(
    grads: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    betas: tuple[float, float] = ADAM_BETAS,
    eps: float = ADAM_EPS,
) -> torch.Tensor:
    """Γ(g) = m' / sqrt(v' + eps), m' = β1 m + (1 - β1) g, v' = β2 v + (1 - β2) g² (per row).

    The update direction Adam would take from the checkpoint's moments ``m``, ``v`` on a step
    whose gradient is ``g`` (Xia et al. 2024, Sec. 2.2), as LESS's code computes it: without the
    bias corrections (a scalar per moment: a cosine does not see it) and with eps under the root.
    """
    b1, b2 = betas
    m = b1 * exp_avg + (1 - b1) * grads
    v = b2 * exp_avg_sq + (1 - b2) * grads.square()
    return m / torch.sqrt(v + eps)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm; an all-zero row stays zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def example_gradients(
    lm: ScoringLM, rows: Sequence[list[int]], device: torch.device
) -> torch.Tensor:
    """(n, p) float32 on the CPU: each row's gradient of its mean next-token cross-entropy with
    respect to the trainable parameters, in eval mode (no dropout), one backward pass per row
    (LESS computes them with batches of one). A row of fewer than two tokens has no next token:
    its gradient is zero."""
    params = trainable_parameters(lm.model)
    n_params = sum(p.numel() for p in params)
    out = torch.zeros((len(rows), n_params), dtype=torch.float32)
    lm.model.eval()
    for i, row in enumerate(rows):
        if len(row) < 2:
            continue
        ids, mask = pad([row], lm.pad_id)
        loss = lm.loss(ids.to(device), mask.to(device))
        grads = torch.autograd.grad(loss, params)
        out[i] = torch.cat([g.reshape(-1) for g in grads]).float().cpu()
    return out


def log_odds_gradients(
    lm: ScoringLM, rows: Sequence[list[int]], device: torch.device
) -> tuple[torch.Tensor, np.ndarray]:
    """TRAK's model output for a text, its gradient and its out-to-loss weight (DsDm's features).

    For each next-token prediction t of a row, with p_t the probability of the true token,
    f_t = log(p_t / (1 - p_t)) = z_y - logsumexp_{j != y} z_j (TRAK's margin of the correct class,
    Park et al. 2023, Sec. 3.3, one class per token); the row's output is f = mean_t f_t and its
    weight Q = mean_t (1 - p_t) (TRAK's ``get_out_to_loss_grad``: minus the derivative of the
    cross-entropy log(1 + e^-f) in f, per token, averaged like the mean loss). Returns the (n, p)
    float32 gradients of f with respect to the trainable parameters, in eval mode, one backward
    pass per row (as ``example_gradients``), and the (n,) float64 weights; a row of fewer than two
    tokens has zero gradient and weight.
    """
    params = trainable_parameters(lm.model)
    n_params = sum(p.numel() for p in params)
    out = torch.zeros((len(rows), n_params), dtype=torch.float32)
    weights = np.zeros(len(rows), dtype=np.float64)
    lm.model.eval()
    for i, row in enumerate(rows):
        if len(row) < 2:
            continue
        ids, mask = pad([row], lm.pad_id)
        ids = ids.to(device)
        logits = lm.logits(ids, mask.to(device))[0, :-1].float()
        labels = ids[0, 1:].unsqueeze(1)
        correct = logits.gather(1, labels).squeeze(1)
        others = logits.scatter(1, labels, float("-inf")).logsumexp(dim=1)
        f = (correct - others).mean()
        grads = torch.autograd.grad(f, params)
        out[i] = torch.cat([g.reshape(-1) for g in grads]).float().cpu()
        p_true = torch.softmax(logits.detach(), dim=1).gather(1, labels).squeeze(1)
        weights[i] = float((1.0 - p_true.double()).mean())
    return out, weights


def gradient_features(
    lm: ScoringLM,
    rows: Sequence[list[int]],
    projector: Projector,
    *,
    device: torch.device,
    moments: tuple[np.ndarray, np.ndarray] | None = None,
    chunk: int = 32,
    show_progress: bool = False,
    desc: str = "gradients",
) -> np.ndarray:
    """(n, d) float32: each row's gradient (Adam-preconditioned with ``moments``, the
    checkpoint's (exp_avg, exp_avg_sq), when given), projected and unit-normalized."""
    from tqdm.auto import tqdm

    m: torch.Tensor | None = None
    v: torch.Tensor | None = None
    if moments is not None:
        m, v = (torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in moments)
    out = np.zeros((len(rows), projector.dim), dtype=np.float32)
    bar = tqdm(total=len(rows), desc=desc, disable=not show_progress, leave=False)
    for lo in range(0, len(rows), chunk):
        g = example_gradients(lm, rows[lo : lo + chunk], device)
        zero = ~g.any(dim=1)
        if m is not None and v is not None:
            g = adam_direction(g, m, v)
            g[zero] = 0.0  # no text, no update: keep the row out of every match
        out[lo : lo + len(g)] = unit_rows(projector(g).numpy())
        bar.update(len(g))
    bar.close()
    return out
