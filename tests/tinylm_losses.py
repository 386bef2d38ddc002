"""The loss methods' scores transcribed by hand on TinyLM: the reference the CoLoR-Filter and
learnability tests compare against (one home, imported by both)."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def transcribed_loss(network, text: str, max_length: int) -> float:
    """L(x): BOS then the UTF-8 bytes, cut to max_length; the mean over positions j of
    -log softmax(logits_j)[x_{j+1}], in float64."""
    ids = [256, *text.encode("utf-8")][:max_length]
    if len(ids) < 2:
        return 0.0
    with torch.no_grad():
        logits = network(torch.tensor([ids]))[0].double()
    logp = F.log_softmax(logits, dim=-1)
    return float(-np.mean([logp[j, ids[j + 1]].item() for j in range(len(ids) - 1)]))


def network_with(weights: np.ndarray, params: dict):
    """The same LoRA-wrapped TinyLM as the method's, its adapters set to ``weights``."""
    from tunesift.models.lora import LoRASpec
    from tunesift.models.per_example_grads import load_flat_trainable, load_scoring_lm

    spec = LoRASpec(r=params["lora_r"], alpha=params["lora_alpha"], dropout=0.0, target_modules=())
    lm = load_scoring_lm(
        "tinylm", max_length=params["max_length"], lora=spec, seed=params["seed"],
        device=torch.device("cpu"),
    )  # fmt: skip
    load_flat_trainable(lm.model, weights)
    return lm.model.eval()
