"""Seed 0 of the causal-cpu preset for the methods the timed-out bench run did not reach."""

import sys
import time

from tunesift.api import prepare, run_method
from tunesift.evaluate.bench import PRESETS
from tunesift.evaluate.causal import CausalConfig, evaluate_causal
from tunesift.evaluate.harness import check_leakage, load_task, read_texts
from tunesift.methods.budget import Budget

out = "runs/bench-causal-cpu"
spec = PRESETS["causal-cpu"]
task = load_task(f"{out}/fortunes-4/train.jsonl", f"{out}/fortunes-4/test.jsonl", name="fortunes-4")
pool = read_texts([f"{out}/pool.jsonl"])
cfg = CausalConfig(**spec.causal)
for method in sys.argv[1:]:
    needs = ["texts", "features"] if method in ("rds", "gotd") else ["texts"]
    prep = prepare(
        f"{out}/pool.jsonl",
        f"{out}/fortunes-4/train.jsonl",
        needs=needs,
        featurizer=spec.featurizer,
    )
    sel = run_method(prep, method, Budget(docs=100), seed=0)
    texts = [pool[i] for i in sel.indices]
    check_leakage(method, texts, task)
    t0 = time.perf_counter()
    r = evaluate_causal(texts, task, cfg, seed=0)
    print(
        f"fortunes-4 {method} k=100 seed=0 causal: perplexity {r.perplexity:.4g}, mc_accuracy {r.mc_accuracy:.4g}, "
        f"mc_macro_f1 {r.mc_macro_f1:.4g}, mc_accuracy_pmi {r.mc_accuracy_pmi:.4g}; train {r.seconds_train:.0f}s "
        f"({r.train_steps} steps, loss {r.train_loss_first:.3f} -> {r.train_loss_last:.3f}), eval {r.seconds_eval:.0f}s, "
        f"total {time.perf_counter() - t0:.0f}s",
        flush=True,
    )
