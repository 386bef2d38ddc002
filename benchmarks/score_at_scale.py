"""GOT-D scoring end to end on given features at scale, against the floor of one pass.

    python benchmarks/score_at_scale.py --pool 1000000 --target 2000 --dim 384 [--device cpu]

Features: ``--features DIR`` with pool.npy/target.npy, or generated (seeded) unit vectors in
clusters, written as float32 .npy and memory-mapped by the run. The run is the CLI itself,
``tunesift select --pool-features ... --target-features ... --budget 1000`` (OT mode auto: a fit on
a pool sample, then the c-transform of every pool row), in a child process whose wall time and
peak RSS beyond the memory-mapped features are measured. The floor is one pass of the same work
that any exact scorer must do: the blocked GEMM for the N x M cost plus one log-sum-exp over it.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np


def make_features(path: Path, n: int, dim: int, seed: int, centers: np.ndarray) -> None:
    """Unit vectors around random cluster centres, written chunk by chunk (no n x dim in RAM)."""
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for s in range(0, n, 100_000):
        k = min(100_000, n - s)
        x = centers[rng.integers(0, len(centers), k)] + 0.6 * rng.normal(size=(k, dim)) / np.sqrt(
            dim
        )
        out[s : s + k] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()


def floor_seconds(x: np.ndarray, y: np.ndarray, block: int = 4096) -> float:
    """One blocked GEMM + logsumexp pass over the whole N x M cost (the floor)."""
    import torch

    yt = torch.from_numpy(np.ascontiguousarray(y))
    t = time.perf_counter()
    for s in range(0, len(x), block):
        xb = torch.from_numpy(np.ascontiguousarray(x[s : s + block]))
        torch.logsumexp(-(xb @ yt.T), dim=1)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=1_000_000)
    ap.add_argument("--target", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--features", type=Path, help="folder with pool.npy and target.npy")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", type=Path, default=Path("data/scale"))
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    if args.features:
        xp, yp = args.features / "pool.npy", args.features / "target.npy"
        source = f"given features from {args.features}"
    else:
        xp, yp = (
            work / f"pool_{args.pool}x{args.dim}.npy",
            work / f"target_{args.target}x{args.dim}.npy",
        )
        source = "generated: unit vectors around 64 random centres (seed 0)"
        if not xp.exists() or not yp.exists():
            centers = np.random.default_rng(0).normal(size=(64, args.dim))
            centers /= np.linalg.norm(centers, axis=1, keepdims=True)
            make_features(xp, args.pool, args.dim, 1, centers)
            make_features(yp, args.target, args.dim, 2, centers[:8])
    out = work / "selected.jsonl"
    cmd = [sys.executable, "-m", "tunesift.cli.main", "select", "--pool-features", str(xp),
           "--target-features", str(yp), "--budget", "1000", "--out", str(out),
           "--device", args.device, "-q"]  # fmt: skip
    # VmHWM (this process's own high-water mark; ru_maxrss would carry the parent's over fork)
    probe = ("import runpy, sys; sys.argv = sys.argv[1:]; "
             "code = 0\ntry:\n    runpy.run_module('tunesift.cli.main', run_name='__main__')\n"
             "except SystemExit as e:\n    code = e.code or 0\n"
             "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
             "print('PEAK_MB', int(hwm) / 1024, file=sys.stderr)\n"
             "sys.exit(code)")  # fmt: skip
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", probe, *cmd[2:]], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    peak = float(proc.stderr.split("PEAK_MB")[-1].split()[0])
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    x, y = np.load(xp, mmap_mode="r"), np.load(yp, mmap_mode="r")
    floor = floor_seconds(x, y)
    feature_mb = (x.nbytes + y.nbytes) / 2**20
    result = {
        "date": str(date.today()),
        "machine": f"{platform.machine()}, {platform.node()}",
        "shape": f"{args.pool} x {args.target} x {args.dim}",
        "features": source,
        "command": " ".join(cmd),
        "wall_s": round(wall, 2),
        "method_s": meta["timings_s"]["method"],
        "peak_rss_mb": round(peak),
        "features_mb": round(feature_mb),
        "peak_beyond_features_mb": round(peak - feature_mb),
        "floor_s": round(floor, 2),
        "ratio_to_floor": round(wall / floor, 2),
        "diagnostics": meta["diagnostics"],
    }
    (work / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
