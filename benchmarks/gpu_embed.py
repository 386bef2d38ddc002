"""MiniLM on a GPU: docs/s through tunesift's featurize in float32, float16 and bfloat16, and what
half precision costs in embedding cosine and in GOT-D's picks (issue 15, item 4).

    python benchmarks/gpu_embed.py --model DIR --pool data/default/pool.jsonl \
        --target data/default/target.jsonl [--repeat 4] [--batches 128,256,512] \
        [--cpu-picks ids.json] [--out result.json]

``--model``: a sentence-transformers folder (the bundled MiniLM, or a copy whose weights are
stored in float16 to travel to a GPU machine: ``SentenceEncoder`` casts them to the dtype asked
for, so a float32 run computes in float32 on float16-rounded weights). The pool texts, repeated
``--repeat`` times, are featurized into a fresh cache for each (dtype, batch) pair after a
warm-up; docs/s is the wall time of ``featurize`` (tokenization, the length-sorted batches,
the copy back, the float16 shard write). Quality: mean and minimum cosine of each half-precision
embedding to the float32 one of the same text on the same GPU, and the top-500 GOT-D picks
(default parameters, budget 500) on the default data from each precision's features against
float32's (and against ``--cpu-picks``, ids picked on a CPU, when given).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from featurize_throughput import ListCorpus  # noqa: E402
from gpu_ot import emit, machine  # noqa: E402

from tunesift.features.registry import get_featurizer  # noqa: E402
from tunesift.features.store import featurize  # noqa: E402
from tunesift.methods.gotd import GOTD  # noqa: E402


def read_texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.open() if line.strip()]


def top_ids(pool: np.ndarray, target: np.ndarray, budget: int, device: str) -> set[int]:
    scores = GOTD(device=device).fit(pool, target).score(pool)
    return {int(i) for i in np.argsort(scores, kind="stable")[:budget]}


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--pool", type=Path, default=Path("data/default/pool.jsonl"))
    ap.add_argument("--target", type=Path, default=Path("data/default/target.jsonl"))
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--batches", default="128,256,512")
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--cpu-picks", type=Path, help="JSON list of pool row ids picked on a CPU")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    pool_texts, target_texts = read_texts(args.pool), read_texts(args.target)
    texts = pool_texts * args.repeat
    words = sum(len(t.split()) for t in pool_texts) / len(pool_texts)
    rows: list[dict[str, object]] = []
    vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for dtype in ("float32", "float16", "bfloat16"):
        cache = Path(tempfile.mkdtemp(prefix="gpu-embed-"))
        enc = get_featurizer(str(args.model), cache_dir=cache, device=args.device, dtype=dtype)
        enc.encode(pool_texts[:1024], batch_size=256)  # load, cast, warm up the kernels
        for bs in (int(b) for b in args.batches.split(",")):
            t = time.perf_counter()
            featurize(ListCorpus(texts), enc, cache_dir=cache, batch_size=bs)
            sec = time.perf_counter() - t
            rows.append({"dtype": dtype, "batch": bs, "docs": len(texts), "seconds": round(sec, 2),
                         "docs_per_s": round(len(texts) / sec)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
        vectors[dtype] = (
            enc.encode(pool_texts, batch_size=256),
            enc.encode(target_texts, batch_size=256),
        )
    ref_pool, ref_target = vectors["float32"]
    picks = {d: top_ids(p, t, args.budget, args.device) for d, (p, t) in vectors.items()}
    cpu = set(json.loads(args.cpu_picks.read_text())) if args.cpu_picks else None
    quality = {}
    for dtype, (p, _) in vectors.items():
        cos = (p * ref_pool).sum(1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(ref_pool, axis=1))
        quality[dtype] = {
            "cosine_to_float32_mean": float(cos.mean()),
            "cosine_to_float32_min": float(cos.min()),
            f"top{args.budget}_jaccard_to_float32": jaccard(picks[dtype], picks["float32"]),
        }
        if cpu is not None:
            quality[dtype][f"top{args.budget}_jaccard_to_cpu_picks"] = jaccard(picks[dtype], cpu)
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "texts": f"{args.pool} x {args.repeat} ({len(texts)} texts, mean {words:.1f} words)",
        "throughput": rows,
        "quality": quality,
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
