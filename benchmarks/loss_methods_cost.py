"""What CoLoR-Filter, learnability and S2L cost on this machine, on real text (Debian fortunes).

    python benchmarks/loss_methods_cost.py [--model tinylm|smollm2|FOLDER] [--pool 200]
        [--target 40] [--steps 100] [--prior-steps 0] [--threads 1]
        [--methods color-filter,learnability,s2l]

The pool is the first ``--pool`` fortunes of the ``computers`` and ``literature`` categories
(alternating), the target ``--target`` other ``computers`` fortunes. Each method runs ``fit``
(its fine-tunes: ``--prior-steps`` and ``--steps`` updates of 8 texts, LoRA on the attention) and
``score`` on the whole pool (two forward passes per row) at its defaults otherwise. Prints a
markdown row per method: seconds to fit, to score the pool, and per pool row scored (the unit
that grows with the pool; wall clock, and the process's CPU seconds, which a busy machine
inflates less), and the share of the pool's top 10% that is ``computers``
(CoLoR-Filter's target; learnability ignores it, 50% is the pool's share).

S2L does its per-row work in ``fit`` (``n_checkpoints`` forward passes per pool row, default 4,
after ``--steps`` updates of its proxy on the pool) and its ``score`` is a lookup of each row's
cluster, so the table's last column, the fit's CPU seconds per pool row, is its unit; its top
10% is the first 10% of its balanced order (a coverage method: it should stay near 50%).
"""

from __future__ import annotations

import argparse
import os
import time

from fortunes_mix import computers_vs_literature, print_table_header

os.environ.setdefault("TQDM_DISABLE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--model", default="tinylm")
    ap.add_argument("--pool", type=int, default=200)
    ap.add_argument("--target", type=int, default=40)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--prior-steps", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default="color-filter,learnability")
    args = ap.parse_args()

    from tunesift.methods import make_method
    from tunesift.methods.base import PoolInfo

    pool, is_comp, target = computers_vs_literature(args.pool, args.target)
    print_table_header(
        ["method", "model", "pool", "steps", "fit s", "score s", "score s per row",
         "score CPU s per row", "computers in top 10%", "fit CPU s per row"]
    )  # fmt: skip
    for name in args.methods.split(","):
        params = dict(model=args.model, steps=args.steps, threads=args.threads, device="cpu")
        if name == "color-filter":
            params["prior_steps"] = args.prior_steps
        m = make_method(name, **params)
        t0, c0 = time.perf_counter(), time.process_time()
        m.fit(pool, target)
        t1, c1 = time.perf_counter(), time.process_time()
        scores = m.score(pool)
        t2, c2 = time.perf_counter(), time.process_time()
        top = m.order(scores, PoolInfo(size=len(pool)))[: max(1, len(pool) // 10)]
        steps = f"{args.prior_steps}+{args.steps}" if name == "color-filter" else str(args.steps)
        print(
            f"| {name} | {args.model} | {len(pool)} | {steps} | {t1 - t0:.1f} | {t2 - t1:.1f} | "
            f"{(t2 - t1) / len(pool):.4f} | {(c2 - c1) / len(pool):.4f} | "
            f"{is_comp[top].mean():.0%} | {(c1 - c0) / len(pool):.4f} |"
        )


if __name__ == "__main__":
    main()
