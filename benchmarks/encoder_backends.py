"""MiniLM encoder backends side by side: docs/s and embedding cosine to torch float32.

    python benchmarks/encoder_backends.py [--corpus data/default/pool.jsonl] [--n 2000] \
        [--repeats 3] [--backends torch,onnx,onnx-int8] [--variants] [--threads T] \
        [--json runs/encoder_backends.json]

Every backend encodes the same ``--n`` texts (a seeded sample of ``--corpus``) with tunesift's
``SentenceEncoder`` at its own batch size, in one process. Timings are interleaved: each repeat
runs every backend once, in a rotated order, so a change of machine load hits all of them alike;
the table gives each backend's median docs/s and its median speed ratio to torch over the
repeats (each ratio from the same repeat). Quality, which does not depend on load: the mean and
minimum cosine of each backend's vectors to torch float32's, text by text.

``--variants`` adds the quantization and truncation variants that are not backends (built into
this run's temporary cache from the same float32 export): ``onnx-unfused`` (the export before
ONNX Runtime's fusions), ``int8-all-per-tensor`` (every quantizable op, the word-embedding
Gather included, one scale per tensor: the naive recipe), ``int8-all-per-channel``,
``int8-matmul-per-tensor``, and ``onnx-msl128`` (float32, texts truncated at 128 tokens).
The GOT-D selection agreement (top-500 Jaccard) is measured with ``tunesift select`` itself;
docs/benchmarks.md has the commands.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def sample_texts(path: Path, n: int, seed: int = 0) -> list[str]:
    texts = [json.loads(line)["text"] for line in path.open()]
    return random.Random(seed).sample(texts, min(n, len(texts)))


def variant_encoders(cache: Path) -> dict[str, Any]:
    """The non-backend variants, as objects with ``encode(texts, batch_size)`` and ``batch_size``."""
    from tunesift.features.sentence import SentenceEncoder
    from tunesift.features.sentence_onnx import (
        MODEL_FILE,
        OnnxSentenceModel,
        atomic_model_folder,
        export_float32,
        export_onnx,
        quantize_int8,
    )

    base = SentenceEncoder("minilm", device="cpu", backend="onnx", cache_dir=cache)
    fused = export_onnx(base.path, cache, "onnx")
    root = cache / "variants"
    builds = {
        "onnx-unfused": lambda tmp: export_float32(base.path, tmp, fuse=False),
        "int8-all-per-tensor": lambda tmp: quantize_int8(fused, tmp, False, None),
        "int8-all-per-channel": lambda tmp: quantize_int8(fused, tmp, True, None),
        "int8-matmul-per-tensor": lambda tmp: quantize_int8(fused, tmp, False, ("MatMul",)),
    }
    out: dict[str, Any] = {}
    msl = base.seq_length()
    for name, build in builds.items():
        folder = atomic_model_folder(root / name, build)
        out[name] = OnnxSentenceModel(folder / MODEL_FILE, base.path, msl, normalize=True)
    out["onnx-msl128"] = OnnxSentenceModel(fused, base.path, 128, normalize=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/default/pool.jsonl"))
    ap.add_argument("--n", type=int, default=2000, help="texts encoded per backend and repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", default="torch,onnx,onnx-int8")
    ap.add_argument("--variants", action="store_true", help="also the non-backend variants")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument(
        "--threads", type=int, help="torch and ONNX Runtime threads (default: their own)"
    )
    ap.add_argument("--cache-dir", type=Path, help="where exports go (default: a temp folder)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.threads is not None:
        import os

        import torch

        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # what the ONNX backends read
        torch.set_num_threads(args.threads)
    from tunesift.features.sentence import SentenceEncoder

    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="tunesift-encoders-"))
    texts = sample_texts(args.corpus, args.n)
    encoders: dict[str, Any] = {
        b: SentenceEncoder("minilm", device="cpu", backend=b, cache_dir=cache)
        for b in args.backends.split(",")
    }
    if "torch" not in encoders:
        encoders = {"torch": SentenceEncoder("minilm", device="cpu"), **encoders}
    t0 = time.perf_counter()
    if args.variants:
        encoders.update(variant_encoders(cache))
    for enc in encoders.values():  # load, export, and warm up outside the timings
        enc.encode(texts[:32], batch_size=args.batch_size)
    print(f"exports and warm-up: {time.perf_counter() - t0:.1f} s; {len(texts)} texts", flush=True)

    names = list(encoders)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    vecs: dict[str, np.ndarray] = {}
    for r in range(args.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            t = time.perf_counter()
            v = encoders[name].encode(texts, batch_size=args.batch_size)
            seconds[name].append(time.perf_counter() - t)
            vecs.setdefault(name, np.asarray(v, dtype=np.float32))
        print(f"repeat {r + 1}: " + ", ".join(f"{n} {seconds[n][-1]:.1f} s" for n in names))

    rows = []
    ref = vecs["torch"]
    for name in names:
        cos = (vecs[name] * ref).sum(1) / (
            np.linalg.norm(vecs[name], axis=1) * np.linalg.norm(ref, axis=1)
        )
        ratios = [t / s for t, s in zip(seconds["torch"], seconds[name], strict=True)]
        rows.append(
            {
                "backend": name,
                "docs_per_s": round(len(texts) / statistics.median(seconds[name]), 1),
                "speed_vs_torch": round(statistics.median(ratios), 2),
                "cosine_mean": float(np.mean(cos)),
                "cosine_min": float(np.min(cos)),
                "seconds": [round(s, 2) for s in seconds[name]],
            }
        )
    print(f"\n{'backend':<24} {'docs/s':>8} {'x torch':>8} {'cos mean':>9} {'cos min':>9}")
    for row in rows:
        print(
            f"{row['backend']:<24} {row['docs_per_s']:>8.1f} {row['speed_vs_torch']:>8.2f} "
            f"{row['cosine_mean']:>9.5f} {row['cosine_min']:>9.5f}"
        )
    if args.json:
        import os
        import platform

        result = {
            "n": len(texts),
            "repeats": args.repeats,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "cpus": os.cpu_count(),
            "load_avg_at_end": os.getloadavg(),
            "machine": platform.platform(),
            "rows": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
