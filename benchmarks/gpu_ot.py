"""Exact GOT-D solve on one GPU: tunesift against POT and ott-jax, side by side (issue 15).

    python benchmarks/gpu_ot.py --pool 1000000 --target 5000 --dim 384 [--work /dev/shm/gpu-ot] \
        [--eps-rel 0.05] [--tol 1e-4] [--out result.json]

Features: seeded unit vectors around 64 random centres (the target around 8 of them), made on
the GPU and kept in ``--work`` as .npy. Each solver runs in its own child process on
device-resident float32 inputs, after a warm-up solve on a small problem (ott-jax: its jitted
solve is compiled there, so the timed call is the second), with the same absolute epsilon
(``--eps-rel`` x the median pool-target squared distance) and uniform weights:
- tunesift: ``tunesift.ot.sinkhorn.sinkhorn`` (log domain, blocked, its default cache rule,
  the fused Triton g-pass), stopping at a target-marginal L1 error below ``--tol``;
  ``tunesift-torch``: the same with ``TUNESIFT_TRITON=0`` (the PyTorch ops);
- POT: ``ot.bregman.sinkhorn_log`` on torch CUDA tensors with the dense cost, ``stopThr=--tol``
  (POT checks the L2 norm of the target-marginal error every 10 iterations);
- ott-jax: ``PointCloud`` + ``Sinkhorn(threshold=--tol)`` (L1 marginal error every 10 iterations).
Reported: solve seconds (inputs already on the GPU, the cost's computation included), iterations,
peak GPU memory, and the Spearman correlation of each solver's pool potential with tunesift's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

DEVICE = "cuda"  # --device cpu: a dry run of the script at a tiny size where no GPU is


def make_features(path: Path, n: int, dim: int, seed: int, n_centres: int) -> None:
    """Unit vectors around the first ``n_centres`` of 64 seeded centres, drawn on the GPU."""
    import torch

    g = torch.Generator(device=DEVICE).manual_seed(0)
    centres = torch.randn(64, dim, device=DEVICE, generator=g)[:n_centres]
    centres /= centres.norm(dim=1, keepdim=True)
    g.manual_seed(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for s in range(0, n, 1_000_000):
        k = min(1_000_000, n - s)
        pick = torch.randint(0, n_centres, (k,), device=DEVICE, generator=g)
        x = centres[pick] + 0.6 * torch.randn(k, dim, device=DEVICE, generator=g) / dim**0.5
        out[s : s + k] = (x / x.norm(dim=1, keepdim=True)).cpu().numpy()
    out.flush()


def machine() -> str:
    """The machine and its GPU (or "cpu") for a result's ``machine`` field."""
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return f"{platform.machine()}, {gpu}"


def emit(result: dict[str, object], out: Path | None) -> None:
    """Print a result as JSON, and write it to ``out`` when given."""
    text = json.dumps(result, indent=1)
    print(text)
    if out:
        out.write_text(text)


def features(work: Path, n: int, m: int, dim: int) -> tuple[Path, Path]:
    xp, yp = work / f"pool_{n}x{dim}.npy", work / f"target_{m}x{dim}.npy"
    if not xp.exists() or not yp.exists():
        work.mkdir(parents=True, exist_ok=True)
        make_features(xp, n, dim, 1, 64)
        make_features(yp, m, dim, 2, 8)
    return xp, yp


def sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def solve(name: str, xp: Path, yp: Path, eps: float, tol: float, out: Path) -> dict[str, object]:
    """One solver, in this (child) process: warm up, then the timed solve; potentials to ``out``."""
    x_np, y_np = np.load(xp), np.load(yp)
    small = (x_np[:20_000], y_np[:500])
    if name in ("tunesift", "tunesift-torch"):
        if name == "tunesift-torch":  # the same solver with the PyTorch ops, not the fused kernels
            os.environ["TUNESIFT_TRITON"] = "0"
        import torch

        from tunesift.ot.sinkhorn import sinkhorn

        def run(x, y):
            return sinkhorn(x, y, eps, tol=tol, max_iter=2000, device=DEVICE)

        run(*(torch.from_numpy(a).to(DEVICE) for a in small))
        x, y = torch.from_numpy(x_np).to(DEVICE), torch.from_numpy(y_np).to(DEVICE)
        sync()
        t = time.perf_counter()
        res = run(x, y)
        sec = time.perf_counter() - t
        pot, info = res.g, {"iterations": res.n_iter, "marginal_error_l1": res.marginal_error,
                            "cost_cached": res.cost_cached, "cache_rule": res.cost_cache_rule}  # fmt: skip
        peak = torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else float("nan")
    elif name == "pot":
        import ot
        import torch

        def run(x, y):
            a = torch.full((len(x),), 1.0 / len(x), device=DEVICE)
            b = torch.full((len(y),), 1.0 / len(y), device=DEVICE)
            cost = torch.cdist(x, y).square_()
            return ot.bregman.sinkhorn_log(a, b, cost, eps, numItermax=2000, stopThr=tol, log=True)

        run(*(torch.from_numpy(a).to(DEVICE) for a in small))
        x, y = torch.from_numpy(x_np).to(DEVICE), torch.from_numpy(y_np).to(DEVICE)
        sync()
        t = time.perf_counter()
        _, log = run(x, y)
        sync()
        sec = time.perf_counter() - t
        pot = log["log_u"].cpu().numpy()
        info = {"iterations": int(log["niter"]), "own_error": float(log["err"][-1])}
        peak = torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else float("nan")
    elif name == "ott":
        import jax
        import jax.numpy as jnp
        from ott.geometry import pointcloud
        from ott.problems.linear import linear_problem
        from ott.solvers.linear import sinkhorn as ott_sinkhorn

        @jax.jit
        def run(x, y):
            geom = pointcloud.PointCloud(x, y, epsilon=eps)
            solver = ott_sinkhorn.Sinkhorn(threshold=tol, max_iterations=2000)
            return solver(linear_problem.LinearProblem(geom))

        jax.block_until_ready(run(*(jnp.asarray(a) for a in small)).f)
        x, y = jnp.asarray(x_np), jnp.asarray(y_np)
        jax.block_until_ready(run(x, y).f)  # compile for this shape
        t = time.perf_counter()
        o = run(x, y)
        jax.block_until_ready(o.f)
        sec = time.perf_counter() - t
        pot = np.asarray(o.f)
        errs = np.asarray(o.errors)
        info = {"iterations": int(o.n_iters), "own_error": float(errs[errs > -1][-1]),
                "converged": bool(o.converged)}  # fmt: skip
        peak = float("nan")
        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            peak = stats["peak_bytes_in_use"] / 2**30
    else:
        raise SystemExit(f"unknown solver {name}")
    np.save(out, np.asarray(pot, dtype=np.float32))
    return {"solver": name, "seconds": round(sec, 3), "peak_gpu_gib": round(peak, 1), **info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=1_000_000)
    ap.add_argument("--target", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--eps-rel", type=float, default=0.05)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--work", type=Path, default=Path("/dev/shm/gpu-ot"))
    ap.add_argument("--solvers", default="tunesift,tunesift-torch,pot,ott")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--eps", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    xp, yp = features(args.work, args.pool, args.target, args.dim)
    if args.child:
        res = solve(args.child, xp, yp, args.eps, args.tol, args.work / f"{args.child}.npy")
        print("RESULT " + json.dumps(res), flush=True)
        return
    from scipy.stats import spearmanr

    from tunesift.ot.sinkhorn import estimate_cost_scale

    x, y = np.load(xp, mmap_mode="r"), np.load(yp, mmap_mode="r")
    eps = args.eps_rel * estimate_cost_scale(x, y, "median", seed=0)
    rows = []
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    for name in args.solvers.split(","):
        cmd = [sys.executable, __file__, "--pool", str(args.pool), "--target", str(args.target),
               "--dim", str(args.dim), "--tol", str(args.tol), "--work", str(args.work),
               "--child", name, "--eps", repr(eps), "--device", args.device]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            rows.append({"solver": name, "failed": proc.stderr[-2000:]})
        else:
            rows.append(json.loads(lines[-1][7:]))
        print(json.dumps(rows[-1]), flush=True)
    ref = np.load(args.work / "tunesift.npy") if (args.work / "tunesift.npy").exists() else None
    for row in rows:
        path = args.work / f"{row['solver']}.npy"
        if ref is not None and "failed" not in row and path.exists():
            row["spearman_to_tunesift"] = float(spearmanr(np.load(path), ref).statistic)
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "shape": f"{args.pool} x {args.target} x {args.dim}",
        "eps_absolute": eps,
        "tol": args.tol,
        "solvers": rows,
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
