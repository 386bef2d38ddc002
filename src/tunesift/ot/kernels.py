"""Fused Triton kernels for the Sinkhorn pass on a CUDA device (two reads of each cost block).

One g-pass over a block of scaled costs cs = C/eps (rows: pool items j, columns: targets i) needs
lse_j = LSE_i(hs_i - cs_ji) (the pool potential g_j = -eps lse_j) and the column sums
s_i = sum_j exp(hs_i - cs_ji - lse_j) (the next target potential). In PyTorch that is a
subtraction, a max, a shift, an exp, a row sum and a matrix-vector product: about ten passes over
the block in memory. Here ``row_lse`` makes one pass (an online log-sum-exp per row) and
``column_sums`` a second (each program sums a tile of rows into a partial per column; the
partials are added by a deterministic ``sum``, never by atomics, so a solve is reproducible bit
for bit on the same GPU). The CPU path (``ot/sinkhorn.py``) is unchanged.

Used when torch sees CUDA and Triton imports (``available``); ``TUNESIFT_TRITON=0`` turns it
off. Tested on the CPU with Triton's interpreter (``TRITON_INTERPRET=1``) and on a GPU
(tests/test_gpu_paths.py).
"""

from __future__ import annotations

import functools
import os

import torch

try:  # an optional dependency: PyTorch's CUDA wheels ship it, CPU installs need not have it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None

BLOCK_J = 32  # rows per tile
BLOCK_I = 256  # columns per tile
ROWS_PER_PROGRAM = 1024  # rows summed into one partial by ``column_sums``


@functools.cache
def available() -> bool:
    """Whether the fused kernels can run here (Triton importable, not switched off)."""
    return triton is not None and os.environ.get("TUNESIFT_TRITON", "1") != "0"


if triton is not None:

    @triton.jit
    def _row_lse_kernel(cs, hs, out, n_rows, n_cols, stride, BJ: tl.constexpr, BI: tl.constexpr):
        rows = tl.program_id(0) * BJ + tl.arange(0, BJ)
        rmask = rows < n_rows
        m = tl.full((BJ,), -1.0e30, tl.float32)
        s = tl.zeros((BJ,), tl.float32)
        for c0 in range(0, n_cols, BI):
            cols = c0 + tl.arange(0, BI)
            cmask = cols < n_cols
            h = tl.load(hs + cols, mask=cmask, other=0.0)
            c = tl.load(
                cs + rows[:, None] * stride + cols[None, :],
                mask=rmask[:, None] & cmask[None, :],
                other=0.0,
            )
            t = tl.where(cmask[None, :], h[None, :] - c, -float("inf"))
            m_new = tl.maximum(m, tl.max(t, axis=1))
            s = s * tl.exp(m - m_new) + tl.sum(tl.exp(t - m_new[:, None]), axis=1)
            m = m_new
        tl.store(out + rows, m + tl.log(s), mask=rmask)

    @triton.jit
    def _column_sums_kernel(
        cs, hs, lse, part, n_rows, n_cols, stride, R: tl.constexpr, BJ: tl.constexpr,
        BI: tl.constexpr,
    ):  # fmt: skip
        cols = tl.program_id(1) * BI + tl.arange(0, BI)
        cmask = cols < n_cols
        h = tl.load(hs + cols, mask=cmask, other=0.0)
        acc = tl.zeros((BI,), tl.float32)
        r0 = tl.program_id(0) * R
        for j0 in range(0, R, BJ):
            rows = r0 + j0 + tl.arange(0, BJ)
            rmask = rows < n_rows
            c = tl.load(
                cs + rows[:, None] * stride + cols[None, :],
                mask=rmask[:, None] & cmask[None, :],
                other=0.0,
            )
            lj = tl.load(lse + rows, mask=rmask, other=0.0)
            e = tl.exp(h[None, :] - c - lj[:, None])
            acc += tl.sum(tl.where(rmask[:, None] & cmask[None, :], e, 0.0), axis=0)
        tl.store(part + tl.program_id(0) * n_cols + cols, acc, mask=cmask)


def row_lse(cs: torch.Tensor, hs: torch.Tensor) -> torch.Tensor:
    """LSE_i(hs_i - cs_ji) for every row j of a (rows, M) block with unit column stride."""
    n, m = cs.shape
    out = torch.empty(n, dtype=torch.float32, device=cs.device)
    grid = (triton.cdiv(n, BLOCK_J),)
    _row_lse_kernel[grid](cs, hs, out, n, m, cs.stride(0), BJ=BLOCK_J, BI=BLOCK_I)
    return out


def column_sums(cs: torch.Tensor, hs: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """sum_j exp(hs_i - cs_ji - lse_j) for every column i (deterministic: partials, then sum)."""
    n, m = cs.shape
    tiles = triton.cdiv(n, ROWS_PER_PROGRAM)
    part = torch.empty((tiles, m), dtype=torch.float32, device=cs.device)
    grid = (tiles, triton.cdiv(m, BLOCK_I))
    _column_sums_kernel[grid](
        cs, hs, lse, part, n, m, cs.stride(0), R=ROWS_PER_PROGRAM, BJ=BLOCK_J, BI=BLOCK_I
    )
    return part.sum(0)
