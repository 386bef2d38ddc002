"""Per-example gradients of the output f at the meta-initialization, randomly projected.

DESIGN §4.3: g_x = ∇θ f(x) at θ*, and ĝ_x = Pᵀ g_x with P a p × d Rademacher matrix scaled by
1/√d (Johnson-Lindenstrauss: inner products survive in expectation). P is generated block by block
of parameters from ``(seed, block)``, so it is never held whole: the official code builds it as a
dense float64 numpy array (p × d × 8 bytes: 40 GB for a 50M-parameter LoRA at d = 100), and the
same seed gives the same P on any machine and any chunking of the examples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from tunesift.errors import TunesiftError
from tunesift.tasks.lm import Example, collate, outputs


class Projector:
    """ĝ = Pᵀ g with P Rademacher ±1/√dim, generated in row blocks from ``seed``.

    Parameters
    ----------
    n_params : int
        Length p of the flattened gradient.
    dim : int
        Projection dimension d.
    seed : int
    block : int
        Rows of P generated at once (memory: block × dim float32).
    cache_bytes : int
        When P fits in this many bytes as int8 signs (1 byte per entry, an eighth of the float64
        matrix), its blocks are kept after their first use instead of being drawn again for
        every chunk of examples (drawing dominated the gradient pass of a 445k-parameter model).
    """

    def __init__(
        self, n_params: int, dim: int, seed: int = 0, block: int = 65536, cache_bytes: int = 2**30
    ):
        if dim < 1 or n_params < 1:
            raise TunesiftError(
                f"projection needs dim >= 1 and parameters >= 1, got {dim}, {n_params}"
            )
        self.n_params, self.dim, self.seed, self.block = (
            int(n_params),
            int(dim),
            int(seed),
            int(block),
        )
        self._cache: dict[int, torch.Tensor] | None = {} if n_params * dim <= cache_bytes else None

    def _signs(self, b: int) -> torch.Tensor:
        if self._cache is not None and b in self._cache:
            return self._cache[b]
        lo = b * self.block
        n = min(self.block, self.n_params - lo)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + b)
        signs = torch.randint(0, 2, (n, self.dim), generator=gen, dtype=torch.int8)
        if self._cache is not None:
            self._cache[b] = signs
        return signs

    def _rows(self, b: int) -> torch.Tensor:
        return self._signs(b).float().mul_(2).sub_(1)

    def __call__(self, grads: torch.Tensor) -> torch.Tensor:
        """Project ``grads`` (n, p) float32 to (n, d) float32."""
        if grads.shape[1] != self.n_params:
            raise TunesiftError(
                f"gradients have {grads.shape[1]} entries, projector expects {self.n_params}"
            )
        out = torch.zeros((grads.shape[0], self.dim), dtype=torch.float32)
        for b in range(-(-self.n_params // self.block)):
            lo = b * self.block
            out += grads[:, lo : lo + self.block].float().cpu() @ self._rows(b)
        return out / self.dim**0.5


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
