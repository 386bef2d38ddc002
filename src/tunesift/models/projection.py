"""Random projection of long gradient vectors: ĝ = Pᵀ g with P a p × d Rademacher matrix.

Johnson-Lindenstrauss: P's entries are ±1/√d, so inner products (and cosines) of projected
gradients match those of the full gradients in expectation. P is generated block by block of
parameters from ``(seed, block)``, so it is never held whole, and the same seed gives the same P
on any machine and any chunking of the examples (the official GradEx code builds P as one dense
float64 numpy array: p × d × 8 bytes, 40 GB for a 50M-parameter LoRA at d = 100; LESS and TAGCOS
use TRAK's projector, Park et al. 2023, Rademacher too).

One projector for the package: GradEx's gradient store (``tunesift.tasks``) and the gradient
selectors LESS and TAGCOS (``tunesift.methods``) project with it.
"""

from __future__ import annotations

import torch

from tunesift.errors import TunesiftError


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
