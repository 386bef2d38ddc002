"""The reports of ``bench`` and ``evaluate``: their result tables, and the intervals drawn as
error bars, per target.

``bench``: from its ``results.json`` (``evaluate.bench.run_bench``'s return value): per task, each
metric's mean over seeds per method and budget (bars: the seeds' spread, ± one standard
deviation), and each method's paired difference to ``random`` and to no pre-fine-tuning with its
95% interval (``evaluate.results.compare_rows``: a bootstrap over seeds and test items, or a
t-interval over seeds). ``evaluate``: from its ``--out`` JSON (``Report.to_dict()``): each
selection's mean ± std over seeds per metric.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np

from tunesift.report import figures
from tunesift.report.page import Page


def _slug(*parts: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(str(p) for p in parts)).strip("-")


def _label(method: str, budget: Any) -> str:
    return method if budget is None else f"{method} k={budget}"


def build_bench_report(data: Mapping[str, Any]) -> Page:
    """The page for a bench's ``results.json``."""
    preset = data.get("preset") or {}
    rows = list(data.get("rows") or [])
    tasks = sorted({r["task"] for r in rows})
    page = Page(
        f"tunesift bench: {preset.get('name', '?')}",
        f"{len(rows)} runs on {len(tasks)} target(s) ({', '.join(tasks)}); seeds "
        f"{preset.get('seeds')}; {data.get('seconds', 0):,.0f} s",
    )
    for task in tasks:
        page.section(f"Target {task}", _task_line(data, task))
        _bench_task(page, task, [r for r in rows if r["task"] == task],
                    [c for c in data.get("comparisons") or [] if c["task"] == task])  # fmt: skip
    page.section("The protocol")
    page.json_block("preset", preset)
    page.json_block("pool", data.get("pool") or {})
    page.json_block("hyperparameters", data.get("hyperparameters") or {})
    page.json_block("environment", data.get("environment") or {})
    return page


def _task_line(data: Mapping[str, Any], task: str) -> str:
    t = (data.get("tasks") or {}).get(task)
    if not t:
        return ""
    return (
        f"Labels {', '.join(map(str, t.get('labels', [])))}; {t.get('train')} train and "
        f"{t.get('test')} test items; target samples of {t.get('target_per_label')} per label."
    )


def _bench_task(
    page: Page, task: str, rows: list[dict[str, Any]], comparisons: list[dict[str, Any]]
) -> None:
    groups: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    order: list[tuple[str, Any]] = []
    for r in rows:
        key = (r["method"], r["budget"])
        if key not in order:
            order.append(key)
        for metric, v in r["metrics"].items():
            groups[(r["mode"], metric)][_label(*key)].append(float(v))
    table = []
    for (mode, metric), by in groups.items():
        for method, budget in order:
            vs = by.get(_label(method, budget))
            if vs:
                table.append([method, budget, mode, metric, float(np.mean(vs)),
                              float(np.std(vs)), len(vs)])  # fmt: skip
    page.table(
        ["method", "budget", "mode", "metric", "mean", "std", "seeds"], table, left=(0, 2, 3)
    )
    for (mode, metric), by in groups.items():
        labels = [lab for lab in (_label(*k) for k in order) if lab in by]
        means = [float(np.mean(by[lab])) for lab in labels]
        sds = [float(np.std(by[lab])) for lab in labels]
        name = _slug(task, mode, metric)
        page.figure(
            name,
            figures.error_bars(
                labels, means, [m - s for m, s in zip(means, sds, strict=True)],
                [m + s for m, s in zip(means, sds, strict=True)], key=name,
                title=f"{task}: {metric} ({mode} mode)", xlabel=metric,
            ),
            f"Mean over seeds, bars ± one standard deviation ({metric}, {mode} mode).",
        )  # fmt: skip
    diffs: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in comparisons:
        diffs[(c["mode"], c["metric"], c["reference"])].append(c)
    for (mode, metric, ref), cs in diffs.items():
        labels = [_label(c["method"], c["budget"]) for c in cs]
        a = [c["absolute"] for c in cs]
        name = _slug(task, mode, metric, "minus", ref)
        kinds = sorted({x["kind"] for x in a})
        page.figure(
            name,
            figures.error_bars(
                labels, [x["estimate"] for x in a], [x["low"] for x in a],
                [x["high"] for x in a], key=name, reference=0.0,
                title=f"{task}: {metric} − {ref} ({mode} mode)", xlabel=f"difference in {metric}",
            ),
            f"Paired difference to {ref} on the same seeds and test items, with its "
            f"{a[0].get('level', 0.95):.0%} interval ({', '.join(kinds)}); an interval that "
            "misses the dotted zero line is significant.",
        )  # fmt: skip


def build_evaluate_report(data: Mapping[str, Any]) -> Page:
    """The page for an ``evaluate --out`` JSON."""
    summary: dict[str, dict[str, dict[str, float]]] = data.get("summary") or {}
    page = Page(
        f"tunesift evaluate: {data.get('mode', '?')} mode on {data.get('task', '?')}",
        f"{len(summary)} selections, seeds {data.get('seeds')}",
    )
    metrics: list[str] = []
    for ms in summary.values():
        metrics += [m for m in ms if m not in metrics]
    page.section("Results")
    page.table(
        ["selection", *(f"{m} (mean ± std)" for m in metrics)],
        [[name, *(_pm(ms.get(m)) for m in metrics)] for name, ms in summary.items()],
    )
    for metric in metrics:
        names = [n for n, ms in summary.items() if metric in ms]
        means = [summary[n][metric]["mean"] for n in names]
        sds = [summary[n][metric]["std"] for n in names]
        name = _slug("evaluate", metric)
        page.figure(
            name,
            figures.error_bars(
                names, means, [m - s for m, s in zip(means, sds, strict=True)],
                [m + s for m, s in zip(means, sds, strict=True)], key=name,
                title=f"{metric} per selection", xlabel=metric,
            ),
            f"Mean over seeds {data.get('seeds')}, bars ± one standard deviation.",
        )  # fmt: skip
    page.section("The run")
    page.json_block("configuration", data.get("config") or {})
    page.json_block("environment", data.get("environment") or {})
    return page


def _pm(v: Mapping[str, float] | None) -> str:
    return "-" if not v else f"{v['mean']:.4g} ± {v['std']:.2g}"
