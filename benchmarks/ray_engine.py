"""The Ray engine against the local one: wall time of the two map steps, and whether they agree.

    python benchmarks/ray_engine.py --texts 4096 --pool 200000 --target 2000 [--num-cpus 2]

1. Embedding: the first ``--texts`` records of the default data's pool (``data/default``, built by
   the README's first command) with MiniLM, in shards of ``--shard`` rows, into a fresh cache:
   locally (torch's own threads), then as Ray tasks (one CPU, one torch thread each). Reported:
   the wall times, the share of rows whose stored float16 vectors are identical, the largest
   difference.
2. Scoring: GOT-D on seeded unit vectors (``--pool`` x ``--dim``, target ``--target``), fitted once;
   the pool scored locally (shards of 262,144 rows: one) and on Ray (the engine's 16,384-row
   shards). Reported: times, whether every score is bitwise equal, and the selected top 1,000.

Ray is started here with ``--num-cpus`` CPUs; its start-up time is reported apart. The json goes
to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def _first_texts(path: Path, n: int) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line)["text"])
            if len(out) == n:
                break
    return out


def embed(args: argparse.Namespace, engine_name: str) -> tuple[float, np.ndarray]:
    from tunesift.corpus.corpus import Corpus
    from tunesift.engine import get_engine
    from tunesift.features.registry import get_featurizer
    from tunesift.features.store import featurize

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "texts.jsonl"
        texts = _first_texts(args.data / "pool.jsonl", args.texts)
        src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        feat = get_featurizer("minilm", cache_dir=Path(d), device="cpu")
        t = time.perf_counter()
        x = featurize(
            Corpus([src]),
            feat,
            cache_dir=Path(d) / "cache",
            shard_size=args.shard,
            engine=get_engine(engine_name),
        )
        x = np.asarray(x)
        return time.perf_counter() - t, x


def score(args: argparse.Namespace) -> dict[str, object]:
    from tunesift.api import _score_in_shards
    from tunesift.engine import get_engine
    from tunesift.methods import make_method
    from tunesift.methods.base import top_k

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(50, args.dim))

    def unit(n: int) -> np.ndarray:
        x = centers[rng.integers(0, 50, n)] + 0.6 * rng.normal(size=(n, args.dim)) / np.sqrt(
            args.dim
        )
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    pool, target = unit(args.pool), unit(args.target)
    m = make_method("gotd", ot_mode="sampled", fit_sample=20_000, device="cpu", seed=0)
    t = time.perf_counter()
    m.fit(pool, target)
    t_fit = time.perf_counter() - t
    out: dict[str, object] = {"fit_s": round(t_fit, 2)}
    scores = {}
    for name in ("local", "ray"):
        t = time.perf_counter()
        scores[name] = _score_in_shards(m, pool, False, get_engine(name))
        out[f"score_{name}_s"] = round(time.perf_counter() - t, 2)
    out["bitwise_equal"] = bool(np.array_equal(scores["local"], scores["ray"]))
    out["top1000_equal"] = bool(
        np.array_equal(
            top_k(scores["local"], 1000, ascending=True), top_k(scores["ray"], 1000, ascending=True)
        )
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/default"))
    ap.add_argument("--texts", type=int, default=4096)
    ap.add_argument("--shard", type=int, default=512)
    ap.add_argument("--pool", type=int, default=200_000)
    ap.add_argument("--target", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=Path("runs/ray_engine.json"))
    args = ap.parse_args()

    import ray

    import tunesift.api as api
    from tunesift.engine import RayEngine

    t = time.perf_counter()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    t_ray = time.perf_counter() - t

    t_local, x_local = embed(args, "local")
    t_rayemb, x_ray = embed(args, "ray")
    same = float(np.mean(np.all(x_local == x_ray, axis=1)))
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "ray": {"version": ray.__version__, "num_cpus": args.num_cpus, "start_s": round(t_ray, 2)},
        "embedding": {
            "texts": args.texts,
            "shard_rows": args.shard,
            "local_s": round(t_local, 2),
            "ray_s": round(t_rayemb, 2),
            "rows_identical": round(same, 4),
            "max_abs_diff": float(np.abs(x_local - x_ray).max()),
        },
        "scoring": {
            "pool": args.pool,
            "target": args.target,
            "dim": args.dim,
            "shard_rows_local": api.SCORE_SHARD_ROWS,
            "shard_rows_ray": RayEngine().shard_rows,
            **score(args),
        },
    }
    ray.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
