"""Seconds per stage of one causal-mode run, to size the causal bench preset (issue 14, item 3).

Stages, each timed in wall-clock and process CPU seconds:
- ``train``: LoRA pre-fine-tuning (``train_causal``) of SmolLM2-135M on ``n`` pool texts
  (1 epoch, batch 8, lr 1e-3, the ``causal-cpu`` settings), for each ``--sizes`` n;
- ``downstream``: the scoring stage after it: one pass over the test texts (perplexity and pooled
  features, zero-shot off), one pass over the labeled train texts, and the probe (5-fold CV for
  C, then the fit): ``score_task(..., zero_shot=False, pool=True)`` + ``probe_task``;
- ``zero_shot`` (optional, ``--zero-shot``): the old scoring stage with zero-shot MC on, to
  compare.

Target: fortunes, 4 labels, ``--train-per-label`` labeled train and ``--test-per-label`` test
texts (``bench.build_task``); the training texts are a seeded sample of the bench pool
(``bench.build_pool``, none of them a task text). Results are printed as JSON lines and, with
``--out``, written to a JSON file.

    nice -n 10 python benchmarks/causal_stage_times.py --max-lengths 32 48 64 --sizes 100 400
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from tunesift.evaluate.bench import PRESETS, TaskSpec, build_pool, build_task
from tunesift.evaluate.causal import (
    CausalConfig,
    load_causal_model,
    load_causal_tokenizer,
    score_task,
    train_causal,
)
from tunesift.evaluate.downstream import probe_task


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t: tuple[float, float]) -> dict[str, float]:
    return {
        "wall_s": round(time.perf_counter() - t[0], 2),
        "cpu_s": round(time.process_time() - t[1], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-lengths", type=int, nargs="*", default=[32, 48, 64])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 400])
    ap.add_argument("--train-per-label", type=int, default=64)
    ap.add_argument("--test-per-label", type=int, default=100)
    ap.add_argument("--pool-per-source", type=int, default=300)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--zero-shot", action="store_true", help="also time the zero-shot stage")
    ap.add_argument(
        "--zero-shot-at", type=int, nargs="*", default=None,
        help="time the zero-shot stage at these max lengths only",
    )  # fmt: skip
    ap.add_argument(
        "--extra", nargs="*", default=[],
        help="more training runs after the rest, as MAX_LENGTH:TEXTS (e.g. 32:400)",
    )  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    spec = dataclasses.replace(
        PRESETS["causal-cpu"],
        train_per_label=args.train_per_label,
        test_per_label=args.test_per_label,
        pool_per_source=args.pool_per_source,
    )
    t = _clock()
    built = build_task(spec, TaskSpec("fortunes"))  # the bench's fixed splits
    task = built.task
    pool = [r["text"] for r in build_pool(spec, [built], seed=args.seed)]
    largest = max(args.sizes + [int(e.split(":")[1]) for e in args.extra])
    texts = random.Random(f"{args.seed}/timing").sample(pool, largest)
    records: list[dict[str, Any]] = [
        {
            "stage": "data",
            "task": task.name,
            "train": len(task.train_texts),
            "test": len(task.test_texts),
            "pool": len(pool),
            **_since(t),
        }
    ]
    print(json.dumps(records[-1]), flush=True)
    for ml in args.max_lengths:
        cfg = CausalConfig(
            max_length=ml, batch_size=8, epochs=1, lr=1e-3, threads=args.threads, zero_shot=False
        )
        tok = load_causal_tokenizer(cfg)
        lens = {
            "pool": [len(r) for r in tok(texts, truncation=True, max_length=ml)["input_ids"]],
            "test": [len(r) for r in tok(task.test_texts, truncation=True, max_length=ml)["input_ids"]],
        }  # fmt: skip
        model = None
        for n in args.sizes:
            t = _clock()
            trained = train_causal(texts[:n], cfg, seed=args.seed, tok=tok)
            assert trained is not None
            rec = {
                "stage": "train", "max_length": ml, "texts": n, "steps": trained.n_steps,
                "mean_tokens": round(statistics.mean(lens["pool"][:n]), 1), **_since(t),
            }  # fmt: skip
            records.append(rec)
            print(json.dumps(rec), flush=True)
            model = trained.model
        if model is None:
            model = load_causal_model(cfg)
        device = torch.device("cpu")
        threads = torch.get_num_threads() if args.threads is None else args.threads
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            t = _clock()
            s = score_task(
                model, tok, task.test_texts, task.labels, cfg, device, zero_shot=False, pool=True
            )
            test_pass = _since(t)
            t2 = _clock()
            down = probe_task(
                model, tok, task.train_texts, task.train_labels, s["features"], task.test_labels,
                task.labels, ml, cfg.eval_batch_size, device,
            )  # fmt: skip
            rec = {
                "stage": "downstream", "max_length": ml, "test": len(task.test_texts),
                "train": len(task.train_texts), "test_mean_tokens":
                round(statistics.mean(lens["test"]), 1), "test_pass": test_pass,
                "train_pass_and_probe": _since(t2), **_since(t), "perplexity":
                round(s["perplexity"], 3), "accuracy": down["accuracy"], "c": down["c"],
            }  # fmt: skip
            records.append(rec)
            print(json.dumps(rec), flush=True)
            if args.zero_shot or ml in (args.zero_shot_at or ()):
                t = _clock()
                score_task(model, tok, task.test_texts, task.labels, cfg, device, zero_shot=True)
                rec = {"stage": "zero_shot", "max_length": ml, **_since(t)}
                records.append(rec)
                print(json.dumps(rec), flush=True)
        finally:
            torch.set_num_threads(old)
    for item in args.extra:
        ml, n = (int(v) for v in item.split(":"))
        cfg = CausalConfig(max_length=ml, batch_size=8, epochs=1, lr=1e-3, threads=args.threads)
        tok = load_causal_tokenizer(cfg)
        ids = tok(texts[:n], truncation=True, max_length=ml)["input_ids"]
        t = _clock()
        trained = train_causal(texts[:n], cfg, seed=args.seed, tok=tok)
        assert trained is not None
        rec = {
            "stage": "train", "max_length": ml, "texts": n, "steps": trained.n_steps,
            "mean_tokens": round(statistics.mean(len(r) for r in ids), 1), **_since(t),
        }  # fmt: skip
        records.append(rec)
        print(json.dumps(rec), flush=True)
    if args.out is not None:
        meta = {"threads": torch.get_num_threads() if args.threads is None else args.threads,
                "cpus": os.cpu_count(), "loadavg_end": os.getloadavg()}  # fmt: skip
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps({"meta": meta, "records": records}, indent=1) + "\n")
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
