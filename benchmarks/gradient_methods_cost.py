"""What LESS, TAGCOS and DsDm cost per pool row on this machine, on real text (Debian fortunes).

    python benchmarks/gradient_methods_cost.py [--model tinylm|smollm2|FOLDER] [--pool 200]
        [--target 20] [--epochs 4] [--threads 1] [--methods less,tagcos,dsdm]

The pool is the first ``--pool`` fortunes of the ``computers`` and ``literature`` categories
(alternating), the target ``--target`` other ``computers`` fortunes. Each method runs ``fit`` and
``score`` on the whole pool with its defaults except the model, the epochs, ``threads``, and a
warm-up share that keeps at least 8 rows. Prints a markdown row per method: seconds for the fit
(warm-up, plus TAGCOS's gradients, k-means and OMP; DsDm's pool and target gradients and
kernels), for scoring the pool, and per pool row and checkpoint (one forward and one backward
pass and one projection: the unit that grows with the pool; LESS's from its scoring, TAGCOS's and
DsDm's from their fit, which takes the pool's gradients and so includes the warm-up, k-means and
OMP, or the target's gradients and the kernels), and the share of the pool's top 10% that is
``computers`` (LESS's and DsDm's target; TAGCOS ignores it, 50% is the pool's share).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from fortunes_mix import computers_vs_literature, print_table_header

os.environ.setdefault("TQDM_DISABLE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tinylm")
    ap.add_argument("--pool", type=int, default=200)
    ap.add_argument("--target", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default="less,tagcos")
    args = ap.parse_args()

    from tunesift.methods import make_method

    pool, is_comp, target = computers_vs_literature(args.pool, args.target)
    print_table_header(
        ["method", "model", "pool", "checkpoints", "fit s", "score s", "s per row x checkpoint",
         "computers in top 10%"]
    )  # fmt: skip
    for name in args.methods.split(","):
        m = make_method(
            name,
            model=args.model,
            epochs=args.epochs,
            warmup_fraction=max(0.05, 8 / len(pool)),
            threads=args.threads,
            device="cpu",
        )
        t0 = time.perf_counter()
        m.fit(pool, target)
        t1 = time.perf_counter()
        scores = m.score(pool)
        t2 = time.perf_counter()
        k = len(m.weights_)
        top = np.argsort(-scores, kind="stable")[: max(1, len(pool) // 10)]
        # LESS takes the pool's gradients in score; TAGCOS and DsDm in fit (score reads them back)
        per = (t2 - t1) / (len(pool) * k) if name == "less" else (t1 - t0) / (len(pool) * k)
        print(
            f"| {name} | {args.model} | {len(pool)} | {k} | {t1 - t0:.1f} | {t2 - t1:.1f} | "
            f"{per:.3f} | {is_comp[top].mean():.0%} |"
        )


if __name__ == "__main__":
    main()
