"""One Sinkhorn iteration on one cost block: two log-sum-exps vs tunesift's one-exp update.

    python benchmarks/sinkhorn_kernel.py [--rows 4096] [--cols 2000] [--repeat 20]

Both compute the same thing: a block's pool potentials g and its contribution to the next target
potential f. Prints seconds per call for each, their ratio, and the largest difference.
"""

from __future__ import annotations

import argparse
import time

import torch

from tunesift.ot.sinkhorn import _soft_ctransform


def two_lse(hs: torch.Tensor, cs: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = -eps * torch.logsumexp(hs[None, :] - cs, dim=1)
    return g, torch.logsumexp(g[:, None] / eps - cs, dim=0)


def one_exp(hs: torch.Tensor, cs: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    lse, e, rows = _soft_ctransform(hs, cs)
    return -eps * lse, torch.log(torch.mv(e.T, rows.reciprocal())) - hs


def timed(fn, *args, repeat: int) -> float:
    fn(*args)
    t = time.perf_counter()
    for _ in range(repeat):
        fn(*args)
    return (time.perf_counter() - t) / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    eps = 0.1
    cs = torch.rand(args.rows, args.cols) * 4 / eps
    hs = torch.randn(args.cols) * 0.1 / eps
    a = timed(two_lse, hs, cs, eps, repeat=args.repeat)
    b = timed(one_exp, hs, cs, eps, repeat=args.repeat)
    g1, f1 = two_lse(hs, cs, eps)
    g2, f2 = one_exp(hs, cs, eps)
    diff = max((g1 - g2).abs().max().item(), (f1 - f2).abs().max().item())
    print(
        f"block {args.rows} x {args.cols}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"two log-sum-exps: {a * 1e3:.2f} ms   one exp + mv: {b * 1e3:.2f} ms   ratio {a / b:.1f}x"
    )
    print(f"max abs difference: {diff:.2e}")


if __name__ == "__main__":
    main()
