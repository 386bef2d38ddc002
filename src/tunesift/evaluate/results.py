"""``tunesift bench``'s results: one row per run, the paired comparisons, and the tables.

A :class:`BenchRow` is one finished run (task, method, budget, seed, mode) with its metrics and
per-test-item arrays. :func:`compare_rows` pairs every method with ``random`` and with the
baseline on the same seeds and test items (95% intervals from ``evaluate.stats``);
:func:`markdown_table`, :func:`interval_table` and :func:`results_csv` are what ``results.md``
and ``results.csv`` hold.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tunesift.evaluate.harness import BASELINE
from tunesift.evaluate.presets import RANDOM
from tunesift.evaluate.stats import (
    Interval,
    macro_f1_difference,
    mean_difference,
    perplexity_difference,
    t_interval,
)


@dataclass
class BenchRow:
    task: str
    method: str
    budget: int | None
    seed: int
    mode: str
    metrics: dict[str, float]
    select_seconds: float
    eval_seconds: float
    # per test item, in test-split order: "test_nll"/"test_tokens" (perplexity),
    # "correct"/"pred" (downstream accuracy); empty when the mode gives none
    per_item: dict[str, list[float]] = field(default_factory=dict)
    # the method's parameters given to the run (``run_bench``'s ``method_params``); empty: its
    # defaults
    params: dict[str, Any] = field(default_factory=dict)


def markdown_table(rows: Sequence[BenchRow]) -> str:
    """One line per task x method x budget; a column per mode's metric, mean ± std over seeds."""
    groups: dict[tuple[str, str, int | None], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    columns: list[str] = []
    for r in rows:
        for k, v in r.metrics.items():
            col = f"{r.mode} {k}"
            if col not in columns:
                columns.append(col)
            groups[(r.task, r.method, r.budget)][col].append(v)
    lines = [
        "| task | method | budget | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for (task, method, budget), cols in groups.items():
        cells = []
        for c in columns:
            vals = cols.get(c, [])
            if not vals:
                cells.append("-")
                continue
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.fmean(vals):.4g} ± {sd:.2g}")
        lines.append(f"| {task} | {method} | {budget or '-'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


LOWER_IS_BETTER = {"perplexity"}
COMPARED = ("perplexity", "accuracy", "macro_f1")


def _paired(
    a: dict[int, BenchRow], b: dict[int, BenchRow], metric: str, n_boot: int
) -> dict[str, Any] | None:
    """The paired difference a − b of ``metric`` over their common seeds."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    ra, rb = [a[s] for s in seeds], [b[s] for s in seeds]

    def have(*keys: str) -> bool:
        return all(k in r.per_item and r.per_item[k] for r in ra + rb for k in keys)

    if metric == "perplexity" and have("test_nll", "test_tokens"):
        d = perplexity_difference(
            [r.per_item["test_nll"] for r in ra], [r.per_item["test_tokens"] for r in ra],
            [r.per_item["test_nll"] for r in rb], [r.per_item["test_tokens"] for r in rb],
            n_boot=n_boot,
        )  # fmt: skip
        return {"seeds": seeds, "absolute": d.absolute.to_dict(), "percent": d.percent.to_dict(),
                "reference_value": d.reference}  # fmt: skip
    if metric == "accuracy" and have("correct"):
        iv = mean_difference([r.per_item["correct"] for r in ra],
                             [r.per_item["correct"] for r in rb], n_boot=n_boot)  # fmt: skip
        return {"seeds": seeds, "absolute": iv.to_dict(), "percent": None}
    if metric == "macro_f1" and have("pred", "gold"):
        iv = macro_f1_difference(
            [[int(x) for x in r.per_item["pred"]] for r in ra],
            [[int(x) for x in r.per_item["pred"]] for r in rb],
            [int(x) for x in ra[0].per_item["gold"]], n_boot=n_boot,
        )  # fmt: skip
        return {"seeds": seeds, "absolute": iv.to_dict(), "percent": None}
    t = t_interval([x.metrics[metric] - y.metrics[metric] for x, y in zip(ra, rb, strict=True)])
    return {"seeds": seeds, "absolute": t.to_dict(), "percent": None}


def compare_rows(
    rows: Sequence[BenchRow], n_boot: int = 2000, against: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Every row group (task, method, budget, mode) against ``random`` at the same budget, each
    method of ``against`` at the same budget, and the baseline, per compared metric, paired by
    seed (and by test item where the rows carry per-item arrays: a two-level bootstrap; else a
    t-interval over seeds)."""
    by: dict[tuple[str, str, int | None, str], dict[int, BenchRow]] = defaultdict(dict)
    for r in rows:
        by[(r.task, r.method, r.budget, r.mode)][r.seed] = r
    out: list[dict[str, Any]] = []
    for (task, method, budget, mode), runs in by.items():
        if method == BASELINE:
            continue
        refs = [(ref, by.get((task, ref, budget, mode)))
                for ref in dict.fromkeys((RANDOM, *against)) if ref != method]  # fmt: skip
        refs.append((BASELINE, by.get((task, BASELINE, None, mode))))
        metrics = [m for m in COMPARED if m in next(iter(runs.values())).metrics]
        for ref_name, ref in refs:
            if not ref:
                continue
            for metric in metrics:
                if not all(metric in r.metrics for r in ref.values()):
                    continue
                d = _paired(runs, ref, metric, n_boot)
                if d is not None:
                    out.append({"task": task, "method": method, "budget": budget, "mode": mode,
                                "metric": metric, "reference": ref_name, **d})  # fmt: skip
    return out


def _interval_of(d: dict[str, Any], scale: float = 1.0) -> Interval:
    return Interval(d["estimate"] * scale, d["low"] * scale, d["high"] * scale, d["kind"],
                    d["n_seeds"], d["n_items"], d["level"])  # fmt: skip


def _cell(c: dict[str, Any] | None, scale: float) -> str:
    """``-2.31 [-4.02, -0.60]* (-2.1% [-3.6%, -0.5%]*)``; ``t`` marks a t-interval over seeds."""
    if c is None:
        return "-"
    iv = _interval_of(c["absolute"], scale)
    digits = 2 if scale != 1 or max(abs(iv.estimate), abs(iv.half_width)) >= 1 else 3
    text = iv.text(digits)
    if c.get("percent"):
        p = _interval_of(c["percent"])
        star = "*" if p.significant else ""
        text += f" ({p.estimate:+.1f}% [{p.low:+.1f}%, {p.high:+.1f}%]{star})"
    return text + ("" if iv.kind == "bootstrap" else " t")


def interval_table(comparisons: Sequence[dict[str, Any]]) -> str:
    """Markdown: each method minus random, minus any further reference method (``compare_rows``'s
    ``against``) and minus the baseline, 95% intervals."""
    groups: dict[tuple[str, str, int | None, str, str], dict[str, dict[str, Any]]] = {}
    for c in comparisons:
        key = (c["task"], c["method"], c["budget"], c["mode"], c["metric"])
        groups.setdefault(key, {})[c["reference"]] = c
    refs_seen = list(dict.fromkeys(c["reference"] for c in comparisons))
    columns = [RANDOM, *[r for r in refs_seen if r not in (RANDOM, BASELINE)], BASELINE]
    lines = [
        "Paired differences, method − reference on the same seeds and test items: mean "
        "[95% interval]; `*` significant (the interval excludes 0); perplexity also in % of the "
        "reference's (lower is better); accuracy and macro-F1 in points. Intervals are a "
        "two-level bootstrap (seeds, then test items), or `t` over seeds where a run kept no "
        "per-item scores.",
        "",
        "| task | method | budget | mode | metric | "
        + " | ".join(f"− {c}" for c in columns)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(columns),
    ]
    for (task, method, budget, mode, metric), refs in groups.items():
        scale = 1.0 if metric in LOWER_IS_BETTER else 100.0
        cells = " | ".join(_cell(refs.get(c), scale) for c in columns)
        lines.append(f"| {task} | {method} | {budget or '-'} | {mode} | {metric} | {cells} |")
    return "\n".join(lines)


def results_csv(rows: Sequence[BenchRow]) -> str:
    """``results.csv``: one line per run and metric, with the run's selection and evaluation
    seconds."""
    header = ["task", "method", "budget", "seed", "mode", "metric", "value", "select_seconds",
              "eval_seconds"]  # fmt: skip
    lines: list[list[Any]] = [header]
    for r in rows:
        for k, v in r.metrics.items():
            lines.append([r.task, r.method, r.budget, r.seed, r.mode, k, v,
                          round(r.select_seconds, 3), round(r.eval_seconds, 3)])  # fmt: skip
    buf = io.StringIO()
    csv.writer(buf).writerows(lines)
    return buf.getvalue()


def params_lines(rows: Sequence[BenchRow]) -> str:
    """Markdown: the parameters each method's rows ran with, where some were given ("" when
    every row ran with its method's defaults)."""
    seen: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if r.params:
            shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(r.params.items()))
            tasks = seen.setdefault((r.method, shown), [])
            if r.task not in tasks:
                tasks.append(r.task)
    if not seen:
        return ""
    lines = ["Method parameters (the rows of the other methods ran with their defaults):", ""]
    lines += [
        f"- {method} ({', '.join(tasks)}): {shown}" for (method, shown), tasks in seen.items()
    ]
    return "\n".join(lines)


def results_markdown(rows: Sequence[BenchRow], comparisons: Sequence[dict[str, Any]]) -> str:
    """``results.md``: the mean ± std table, the parameters given to methods (if any), then the
    paired intervals."""
    params = params_lines(rows)
    middle = "\n\n" + params if params else ""
    return markdown_table(rows) + middle + "\n\n" + interval_table(comparisons) + "\n"
