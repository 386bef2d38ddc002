"""Per-example gradients of the output f at the meta-initialization, randomly projected.

DESIGN §4.3: g_x = ∇θ f(x) at θ*, and ĝ_x = Pᵀ g_x with P a p × d Rademacher matrix scaled by
1/√d (Johnson-Lindenstrauss: inner products survive in expectation). P is generated block by block
of parameters from ``(seed, block)``, so it is never held whole: the official code builds it as a
dense float64 numpy array (p × d × 8 bytes: 40 GB for a 50M-parameter LoRA at d = 100), and the
same seed gives the same P on any machine and any chunking of the examples. The projector lives in
``tunesift.models.projection`` (the gradient selectors LESS and TAGCOS share it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from tunesift.errors import TunesiftError
from tunesift.models.projection import Projector
from tunesift.tasks.lm import Example, collate, outputs

__all__ = ["Projector", "projected_gradients", "trainable"]


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters that fine-tuning moves (all, or the LoRA ones), in a fixed order."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def projected_gradients(
    model: nn.Module,
    examples: Sequence[Example],
    projector: Projector,
    chunk: int = 64,
    progress: bool = False,
    desc: str = "gradients",
) -> tuple[np.ndarray, np.ndarray]:
    """f(x) (n,) float64 and ĝ_x (n, d) float32 for every example, at the model's weights.

    One backward pass per example (exact, deterministic); the flat gradients of ``chunk`` examples
    are projected together. (``torch.func.vmap`` over a chunk measured no faster on a 2-core CPU
    for the 445k-parameter TinyLM, and its first call took 3x longer, so the plain loop stays.)
    """
    from tqdm.auto import tqdm

    params = [p for _, p in trainable(model)]
    n_params = sum(p.numel() for p in params)
    if n_params != projector.n_params:
        raise TunesiftError(
            f"model has {n_params} trainable parameters, projector {projector.n_params}"
        )
    device = params[0].device
    model.eval()  # no dropout: the gradient of the deterministic output
    f = np.zeros(len(examples))
    g = np.zeros((len(examples), projector.dim), dtype=np.float32)
    bar = tqdm(total=len(examples), desc=desc, disable=not progress, leave=False)
    for lo in range(0, len(examples), chunk):
        part = examples[lo : lo + chunk]
        flat = torch.zeros((len(part), n_params), dtype=torch.float32)
        for i, e in enumerate(part):
            ids, mask = collate([e], device)
            out = outputs(model, ids, mask)[0]
            grads = torch.autograd.grad(out, params)
            flat[i] = torch.cat([q.reshape(-1) for q in grads]).float().cpu()
            f[lo + i] = float(out.detach())
            bar.update(1)
        g[lo : lo + len(part)] = projector(flat).numpy()
    bar.close()
    return f, g
