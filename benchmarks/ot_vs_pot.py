"""GOT-D's OT solve on real text embeddings: tunesift (exact and sampled) against POT, side by side.

    python benchmarks/ot_vs_pot.py --pool 200000 --target 2000 [--featurizer static --static-dims 384] \
        [--eps-rel 0.05] [--tol 1e-4] [--fit-sample 20000] [--skip-pot]

Real text: every Debian corpus source (``tunesift corpora build``, no cap), the target a sample of
the GCIDE (Zool.) slice held out of the pool; a seeded random ``--pool`` rows of the rest.
Each solver runs in its own fresh process, so its peak memory (VmHWM minus the RSS before the
solve, i.e. beyond the loaded features) is its own. Agreement: Spearman of pool potentials and
Jaccard of the top-5% sets against POT, and both solutions' marginal errors measured the same way
(L1 error of each marginal of the plan their potentials define). Prints a markdown table row.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_mb() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child started by a
    # big parent would report the parent's size; VmHWM belongs to the child's own address space.
    return _status_mb("VmHWM")


def run_tunesift(
    x_path: str, y_path: str, eps: float, tol: float, fit_sample: int, out: str
) -> None:
    from tunesift.methods import GOTD

    x, y = np.load(x_path), np.load(y_path)
    base = rss_mb()
    t = time.perf_counter()
    mode = "exact" if fit_sample == 0 else "sampled"
    m = GOTD(
        epsilon=eps,
        epsilon_mode="absolute",
        tol=tol,
        ot_mode=mode,
        fit_sample=max(fit_sample, 1),
        device="cpu",
    )
    m.fit(x, y)
    g = m.score(x)
    seconds = time.perf_counter() - t
    np.save(out + ".g.npy", g)
    np.save(out + ".f.npy", m.result_.f)
    d = m.diagnostics()
    Path(out + ".json").write_text(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak_mb() - base,
                "iterations": d["iterations"],
                "converged": d["converged"],
                "fit_size": d["fit_size"],
            }
        )
    )


def run_pot(x_path: str, y_path: str, eps: float, stop_thr: float, out: str) -> None:
    import ot
    import torch

    x, y = np.load(x_path), np.load(y_path)
    base = rss_mb()
    t = time.perf_counter()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    cost = ot.dist(yt, xt)  # (M, N) squared Euclidean, float32
    a = torch.full((len(y),), 1 / len(y))
    b = torch.full((len(x),), 1 / len(x))
    _, log = ot.sinkhorn(
        a, b, cost, eps, method="sinkhorn_log", log=True, numItermax=2000, stopThr=stop_thr
    )
    seconds = time.perf_counter() - t
    np.save(out + ".g.npy", (eps * log["log_v"]).numpy())
    np.save(out + ".f.npy", (eps * log["log_u"]).numpy())
    Path(out + ".json").write_text(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak_mb() - base,
                "iterations": int(log["niter"]),
            }
        )
    )


def marginal_errors(
    x: np.ndarray, y: np.ndarray, f: np.ndarray, g: np.ndarray, eps: float
) -> tuple[float, float]:
    """L1 errors of the target and pool marginals of P_ij = exp((f_i + g_j - C_ij)/eps) / Z.

    Potentials from different solvers differ by the log-weights they fold in; normalizing the plan
    to total mass 1 makes the measure the same for both."""
    import torch

    from tunesift.ot.sinkhorn import squared_distances

    yt = torch.from_numpy(y)
    ft, gt = torch.from_numpy(f).double(), torch.from_numpy(g).double()
    rows = torch.zeros(len(y), dtype=torch.float64)
    cols = torch.zeros(len(x), dtype=torch.float64)
    shift = float(ft.max() + gt.max())
    for s in range(0, len(x), 8192):
        c = squared_distances(torch.from_numpy(x[s : s + 8192]), yt).double()  # (B, M)
        p = torch.exp((gt[s : s + 8192, None] + ft[None, :] - c - shift) / eps)
        rows += p.sum(0)
        cols[s : s + 8192] = p.sum(1)
    z = rows.sum()
    return (float((rows / z - 1 / len(y)).abs().sum()), float((cols / z - 1 / len(x)).abs().sum()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=200_000)
    ap.add_argument("--target", type=int, default=2000)
    ap.add_argument("--featurizer", default="static")
    ap.add_argument(
        "--static-dims", type=int, help="static featurizer's PCA width (384 = MiniLM's)"
    )
    ap.add_argument("--eps-rel", type=float, default=0.05)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument(
        "--pot-stop", type=float, default=None, help="POT stopThr (default: tol / sqrt(pool))"
    )
    ap.add_argument("--fit-sample", type=int, default=20_000)
    ap.add_argument("--skip-pot", action="store_true")
    ap.add_argument("--work", type=Path, default=Path("data/bench"))
    args = ap.parse_args()

    from tunesift.corpora.build import build_corpora
    from tunesift.corpus.corpus import Corpus
    from tunesift.features.registry import get_featurizer
    from tunesift.features.store import featurize
    from tunesift.ot.sinkhorn import estimate_cost_scale

    work = args.work
    if not (work / "pool.jsonl").exists():
        build_corpora(
            work, max_per_source=None, target="gcide:Zool.", target_size=args.target, seed=0
        )
    cache = work / "cache"
    params = (
        {"pca_dims": args.static_dims} if args.static_dims and args.featurizer == "static" else {}
    )
    feat = get_featurizer(args.featurizer, cache_dir=cache, **params)
    t = time.perf_counter()
    pool = featurize(Corpus(work / "pool.jsonl"), feat, cache_dir=cache, show_progress=True)
    target = featurize(Corpus(work / "target.jsonl"), feat, cache_dir=cache)[: args.target]
    t_feat = time.perf_counter() - t
    if len(pool) < args.pool:
        raise SystemExit(
            f"the corpora hold {len(pool)} pool records, fewer than --pool {args.pool}"
        )
    rows = np.sort(np.random.default_rng(0).choice(len(pool), args.pool, replace=False))
    x = np.ascontiguousarray(pool[rows])
    y = np.ascontiguousarray(target)
    tag = f"{args.pool}x{len(y)}"
    x_path, y_path = str(work / f"x_{tag}.npy"), str(work / f"y_{tag}.npy")
    np.save(x_path, x)
    np.save(y_path, y)
    eps = args.eps_rel * estimate_cost_scale(x, y)
    pot_stop = args.pot_stop if args.pot_stop is not None else args.tol / np.sqrt(args.pool)
    print(
        f"{tag} x {x.shape[1]}-d {feat.id}; features {t_feat:.1f} s; eps {eps:.4g} ({args.eps_rel} x median)"
    )

    ctx = mp.get_context("spawn")
    runs = {"tunesift exact": (run_tunesift, (x_path, y_path, eps, args.tol, 0))}
    if args.fit_sample:
        runs[f"tunesift sampled {args.fit_sample}"] = (
            run_tunesift,
            (x_path, y_path, eps, args.tol, args.fit_sample),
        )
    if not args.skip_pot:
        runs["POT sinkhorn_log torch"] = (run_pot, (x_path, y_path, eps, pot_stop))
    results = {}
    for name, (fn, fargs) in runs.items():
        out = str(work / f"run_{tag}_{name.replace(' ', '_')}")
        p = ctx.Process(target=fn, args=(*fargs, out))
        p.start()
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"{name} failed with exit code {p.exitcode}")
        res = json.loads(Path(out + ".json").read_text())
        res["g"], res["f"] = np.load(out + ".g.npy"), np.load(out + ".f.npy")
        res["marginal_errors"] = (
            marginal_errors(x, y, res["f"], res["g"], eps)
            if "exact" in name or "POT" in name
            else None
        )
        results[name] = res
        print(
            f"{name}: {res['seconds']:.1f} s, peak +{res['peak_mb']:.0f} MB, {res['iterations']} iterations, "
            f"marginal L1 errors (target, pool) {res['marginal_errors']}"
        )

    from scipy.stats import spearmanr

    def agree(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        k = len(a) // 20
        ta, tb = set(np.argsort(a, kind="stable")[:k]), set(np.argsort(b, kind="stable")[:k])
        return float(spearmanr(a, b).statistic), len(ta & tb) / len(ta | tb)

    ref_name = "POT sinkhorn_log torch" if "POT sinkhorn_log torch" in results else "tunesift exact"
    ref = results[ref_name]
    summary = {
        "date": str(date.today()),
        "machine": f"{platform.machine()}, {mp.cpu_count()} cores",
        "shape": tag,
        "dim": int(x.shape[1]),
        "featurizer": feat.id,
        "eps": eps,
        "tol": args.tol,
        "pot_stop": pot_stop,
        "runs": {},
    }
    for name, res in results.items():
        rho, jac = agree(res["g"], ref["g"])
        ex_rho, ex_jac = agree(res["g"], results["tunesift exact"]["g"])
        summary["runs"][name] = {k: v for k, v in res.items() if k not in ("g", "f")} | {
            f"spearman_vs_{ref_name}": rho,
            f"top5_jaccard_vs_{ref_name}": jac,
            "spearman_vs_exact": ex_rho,
            "top5_jaccard_vs_exact": ex_jac,
        }
        print(
            f"| {name} | {res['seconds']:.1f} | {res['peak_mb']:.0f} | {res['iterations']} | "
            f"{rho:.5f} | {jac:.3f} | {ex_rho:.5f} | {ex_jac:.3f} |"
        )
    if "POT sinkhorn_log torch" in results:
        us, pot = results["tunesift exact"], results["POT sinkhorn_log torch"]
        print(
            f"speed-up {pot['seconds'] / us['seconds']:.1f}x, memory {us['peak_mb'] / pot['peak_mb']:.2f} of POT's"
        )
    (work / f"result_{tag}.json").write_text(json.dumps(summary, indent=1, default=float))


if __name__ == "__main__":
    main()
