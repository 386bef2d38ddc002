"""Featurization throughput: tunesift's featurize (cache, shards, progress) vs bare encode calls.

    python benchmarks/featurize_throughput.py [--corpus data/bench/pool.jsonl] [--st-docs 2000] \
        [--static-docs 100000] [--batch-size 64] [--sweep 16,32,64,128]

Same texts (a seeded sample of the corpus), same batch size, same process: MiniLM through
``tunesift.features.store.featurize`` (fresh cache) against one bare
``SentenceTransformer.encode`` call; the static featurizer through ``featurize``. Documents/s.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from tunesift.corpus.records import RecordBatch


class ListCorpus:
    """The sampled texts as a corpus (fingerprint unique per run, so the cache starts empty)."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self._fp = f"bench-{time.time_ns()}"

    def batches(self, batch_size: int = 1024):
        for s in range(0, len(self.texts), batch_size):
            t = self.texts[s : s + batch_size]
            yield RecordBatch(
                list(range(s, s + len(t))), t, t, ["b"] * len(t), [{}] * len(t), [("b", 0)] * len(t)
            )

    def fingerprint(self) -> str:
        return self._fp


def sample_texts(path: Path, n: int, seed: int = 0) -> list[str]:
    texts = [json.loads(line)["text"] for line in path.open()]
    return random.Random(seed).sample(texts, min(n, len(texts)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/bench/pool.jsonl"))
    ap.add_argument("--st-docs", type=int, default=2000)
    ap.add_argument("--static-docs", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument(
        "--sweep", help="comma-separated batch sizes: MiniLM featurize docs/s for each, then stop"
    )
    args = ap.parse_args()
    from tunesift.features.registry import get_featurizer
    from tunesift.features.store import featurize

    cache = Path(tempfile.mkdtemp(prefix="tunesift-bench-"))
    texts = sample_texts(args.corpus, args.st_docs)
    words = sum(len(t.split()) for t in texts) / len(texts)
    enc = get_featurizer("minilm", cache_dir=cache, device="cpu")
    model = enc.model
    if args.sweep:
        model.encode(texts[:64], batch_size=64)  # warm-up
        for bs in (int(b) for b in args.sweep.split(",")):
            t = time.perf_counter()
            featurize(ListCorpus(texts), enc, cache_dir=cache, batch_size=bs)
            print(
                f"MiniLM featurize, batch {bs}: {len(texts) / (time.perf_counter() - t):.1f} docs/s"
            )
        return
    model.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    t = time.perf_counter()
    model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
    bare = len(texts) / (time.perf_counter() - t)
    t = time.perf_counter()
    featurize(ListCorpus(texts), enc, cache_dir=cache, batch_size=args.batch_size)
    ours = len(texts) / (time.perf_counter() - t)
    print(
        f"MiniLM, {len(texts)} texts (mean {words:.0f} words), batch {args.batch_size}: "
        f"bare SentenceTransformer.encode {bare:.1f} docs/s, tunesift featurize {ours:.1f} docs/s "
        f"({ours / bare:.2f} of bare)"
    )

    static_texts = sample_texts(args.corpus, args.static_docs, seed=1)
    words = sum(len(t.split()) for t in static_texts) / len(static_texts)
    st = get_featurizer("static", cache_dir=cache)
    st.encode(static_texts[:100])  # distil once and warm up
    t = time.perf_counter()
    featurize(ListCorpus(static_texts), st, cache_dir=cache)
    rate = len(static_texts) / (time.perf_counter() - t)
    print(
        f"static, {len(static_texts)} texts (mean {words:.0f} words): tunesift featurize {rate:,.0f} docs/s"
    )


if __name__ == "__main__":
    main()
