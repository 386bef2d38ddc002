"""Bounded memory: select from a 2,000,000-document JSONL pool under a 4 GiB address-space limit.

    nice -n 15 python benchmarks/bounded_memory.py --docs 2000000 --workdir /tmp/tunesift-bm

1. Writes a seeded pool of short texts (a few words from a small vocabulary, with a topic per
   document so the target has somewhere to go) and a 1,000-document target, streaming: the
   generator never holds more than one line.
2. Warms the featurizer's model outside the limit (the static model is distilled once per cache;
   distilling is not what is measured), on a 10-document pool.
3. Runs ``tunesift select --featurizer static|ngrams`` under ``prlimit --as=<limit>`` and
   ``/usr/bin/time -v``, and prints the peak RSS, the wall time and the exit status as JSON.

The limit is on address space (``RLIMIT_AS``), which counts every mapping: the memory-mapped
feature shards, thread stacks and shared libraries, not only what is resident.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

TOPICS = {
    "cooking": "oven butter flour simmer garlic onion recipe bake sauce pepper salt roast",
    "space": "orbit rocket planet galaxy telescope comet lunar solar astronaut nebula star",
    "law": "court judge statute appeal contract plaintiff verdict counsel ruling clause",
    "music": "chord melody tempo guitar violin rhythm concert chorus lyric drum bass",
    "finance": "stock bond yield market dividend equity loan interest bank credit fund",
    "health": "doctor patient vaccine clinic symptom therapy dose nurse fever diet sleep",
}
COMMON = "the a of and to in is was for on with as by at from that this it be are".split()


def write_pool(path: Path, docs: int, seed: int, topics: list[str] | None = None) -> None:
    """``docs`` JSONL records of 8-24 words, one topic's words mixed with common ones."""
    rng = random.Random(seed)
    names = topics or sorted(TOPICS)
    vocab = {t: TOPICS[t].split() for t in names}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for i in range(docs):
            topic = names[rng.randrange(len(names))]
            words = [
                rng.choice(vocab[topic]) if rng.random() < 0.5 else rng.choice(COMMON)
                for _ in range(rng.randint(8, 24))
            ]
            rec = {"id": f"d{i}", "text": " ".join(words), "source": topic}
            fh.write(json.dumps(rec) + "\n")
    tmp.replace(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=2_000_000)
    ap.add_argument("--target-docs", type=int, default=1000)
    ap.add_argument("--budget", type=int, default=10_000)
    ap.add_argument("--featurizer", choices=["static", "ngrams"], default="static")
    ap.add_argument("--method", default="gotd")
    ap.add_argument("--limit", type=int, default=4 * 1024**3, help="bytes of address space")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/tunesift-bounded-memory"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    pool, target = work / f"pool-{args.docs}.jsonl", work / "target.jsonl"
    cache, out = work / "cache", work / "selected.jsonl"
    tunesift = [sys.executable, "-m", "tunesift"]
    t0 = time.perf_counter()
    if not pool.exists():
        write_pool(pool, args.docs, args.seed)
    if not target.exists():
        write_pool(target, args.target_docs, args.seed + 1, topics=["space", "music"])
    gen_s = time.perf_counter() - t0
    tiny = work / "tiny.jsonl"
    write_pool(tiny, 10, 7)
    subprocess.run(
        [*tunesift, "select", "--pool", str(tiny), "--target", str(tiny), "--budget", "2",
         "--featurizer", args.featurizer, "--cache-dir", str(cache), "--out",
         str(work / "tiny-out.jsonl"), "-q"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    cmd = [
        "prlimit", f"--as={args.limit}", "/usr/bin/time", "-v", *tunesift, "-v", "select",
        "--pool", str(pool), "--target", str(target), "--budget", str(args.budget),
        "--featurizer", args.featurizer, "--method", args.method, "--cache-dir", str(cache),
        "--out", str(out), "--scores-out", str(work / "scores.parquet"), "-q",
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    report = {
        "docs": args.docs,
        "featurizer": args.featurizer,
        "method": args.method,
        "limit_bytes": args.limit,
        "exit_status": proc.returncode,
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(int(peak.group(1)) / 1024, 1) if peak else None,
        "generate_s": round(gen_s, 1),
        "command": " ".join(cmd),
    }
    print(proc.stdout[-3000:])
    print("\n".join(proc.stderr.splitlines()[-40:]), file=sys.stderr)
    print(json.dumps(report, indent=1))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
