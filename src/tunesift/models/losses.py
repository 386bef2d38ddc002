"""Per-example losses of a causal LM over texts, and the short fine-tunes that move it.

The loss-based selectors compare one model's per-example loss in two states: CoLoR-Filter
(Brandfonbrener et al. 2024) the prior and the target-conditioned model, learnability (LoBaSS,
Zhou et al. 2023) the model before and after a short fine-tune on the pool. Both run on the
scoring LM of ``tunesift.models.per_example_grads`` (a LoRA-wrapped ``TinyLM``, SmolLM2-135M or a
local causal-LM folder); this module holds what they share:

- ``row_losses``: each row's mean next-token cross-entropy over its real tokens (the padding
  ignored), the per-sequence loss CoLoR-Filter's ``score.py`` takes (``loss_reduction="none"``,
  then the mean over the sequence);
- ``example_losses``: that loss for every row, in eval mode, without gradients;
- ``fine_tune``: a fixed number of AdamW steps on rows with the package's one training loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from tunesift.errors import TunesiftError
from tunesift.models.per_example_grads import ScoringLM, load_flat_trainable, pad
from tunesift.models.seeds import run_scope
from tunesift.models.training import OptimConfig, step_batches, train_steps

#: seeds the batch order of ``fine_tune`` (with the run's seed), apart from every other stream
_BATCH_STREAM = 0xC0F


def row_losses(lm: ScoringLM, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch,) float32: each row's mean next-token cross-entropy over its real tokens.

    A row with fewer than two real tokens predicts nothing: its loss is 0.
    """
    logits = lm.logits(ids, mask)[:, :-1].float()
    ce = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    real = mask[:, 1:].to(ce.dtype)
    return (ce * real).sum(1) / real.sum(1).clamp(min=1.0)


@torch.no_grad()
def example_losses(
    lm: ScoringLM, rows: Sequence[Sequence[int]], *, batch_size: int, device: torch.device
) -> np.ndarray:
    """Every row's mean next-token cross-entropy (nats per token), float64, in order.

    Rows go through the model ``batch_size`` at a time, right-padded (a causal model's real
    positions never attend to later ones, so padding changes nothing but float rounding).
    """
    lm.model.eval()
    out = np.zeros(len(rows), dtype=np.float64)
    for lo in range(0, len(rows), batch_size):
        chunk = [list(r) if len(r) else [lm.pad_id] for r in rows[lo : lo + batch_size]]
        ids, mask = pad(chunk, lm.pad_id)
        losses = row_losses(lm, ids.to(device), mask.to(device))
        out[lo : lo + len(chunk)] = losses.double().cpu().numpy()
    return out


def fine_tune(
    lm: ScoringLM,
    rows: Sequence[Sequence[int]],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    warmup_ratio: float,
    seed: int,
    device: torch.device,
    desc: str = "fine-tune",
    show_progress: bool = False,
    on_step: Callable[[int, torch.optim.Optimizer], None] | None = None,
) -> list[float]:
    """``steps`` AdamW updates of the trainable parameters on ``rows``; each step's loss.

    Batches of ``batch_size`` rows drawn without replacement, reshuffled when a pass runs out
    (``step_batches``, from ``numpy.random.default_rng([seed, 0xC0F])``); the rate warms up
    linearly over ``round(warmup_ratio * steps)`` updates, then decays linearly to zero; no
    weight decay; the gradient norm clipped at 1. Torch's global RNGs are forked, so the
    caller's random state is left as it was. Rows of fewer than two tokens are left out.
    ``on_step(step, optimizer)`` runs after update ``step`` (0-based), as in ``train_steps``:
    S2L keeps the adapter weights at its checkpoints there.
    """
    usable = [list(r) for r in rows if len(r) >= 2]
    if not usable:
        raise TunesiftError(f"{desc}: no text has two tokens to learn from")
    if steps < 1:
        return []
    batches = step_batches(
        len(usable), batch_size, steps, np.random.default_rng([seed, _BATCH_STREAM])
    )
    optim = OptimConfig.warmup_linear(lr, steps, warmup_ratio, weight_decay=0.0)
    with run_scope(None, device):
        losses = train_steps(
            lm.model,
            batches,
            lambda idx: pad([usable[i] for i in idx], lm.pad_id),
            lambda _model, ids, mask: lm.loss(ids, mask),
            optim,
            seed=seed,
            device=device,
            desc=desc,
            show_progress=show_progress,
            on_step=on_step,
        )
    lm.model.eval()
    return losses


def losses_under(
    lm: ScoringLM,
    states: Sequence[np.ndarray],
    rows: Sequence[Sequence[int]],
    *,
    batch_size: int,
    device: torch.device,
) -> list[np.ndarray]:
    """``example_losses`` of ``rows`` with the trainable parameters set to each of ``states``
    (``flat_trainable``'s layout) in turn; the model is left in the last state."""
    out = []
    for state in states:
        load_flat_trainable(lm.model, state)
        out.append(example_losses(lm, rows, batch_size=batch_size, device=device))
    return out
