"""``write_run_report``: the report of any finished run, told apart by what it saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunesift.errors import InputError
from tunesift.report.page import Page
from tunesift.report.select_run import SIDECAR_SUFFIX


def run_kind(path: str | Path) -> tuple[str, Path]:
    """(kind, file) of a run's outputs: ``select`` (a sidecar), ``compare`` (``--save`` JSON),
    ``evaluate`` (``--out`` JSON), ``bench`` (its ``results.json``) or ``tasks`` (its folder, or
    its ``selection.json`` or ``validation.json``); a folder is searched for one of these."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or directory", p)
    if p.is_dir():
        if (p / "results.json").is_file():
            return "bench", p / "results.json"
        if (p / "selection.json").is_file() or (p / "validation.json").is_file():
            return "tasks", p
        sidecars = sorted(p.glob(f"*{SIDECAR_SUFFIX}"))
        if len(sidecars) == 1:
            return "select", sidecars[0]
        raise InputError(
            f"found {len(sidecars) or 'no'} select sidecars (*{SIDECAR_SUFFIX}) and no bench "
            "results.json or tasks selection.json/validation.json here: name the file",
            p,
        )
    data = _json(p)
    if "method" in data and "counts" in data:
        return "select", p
    if "results" in data and "overlap" in data:
        return "compare", p
    if "rows" in data and "comparisons" in data:
        return "bench", p
    if "selection" in data or "validation" in data:
        return "tasks", p
    if "summary" in data and "mode" in data:
        return "evaluate", p
    raise InputError("not the output of select, compare, evaluate, bench or tasks", p)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a readable JSON file ({exc})", path) from None
    if not isinstance(data, dict):
        raise InputError("not a tunesift output (a JSON object was expected)", path)
    return data


def write_run_report(path: str | Path, out: str | Path, *, seed: int = 0) -> tuple[str, Page]:
    """Read a finished run from ``path`` and write its HTML report to ``out``: (kind, page)."""
    kind, file = run_kind(path)
    page: Page
    if kind == "select":
        from tunesift.report.select_report import build_select_report
        from tunesift.report.select_run import load_select_run

        page = build_select_report(load_select_run(file), seed=seed)
    elif kind == "compare":
        from tunesift.report.compare_report import build_compare_report

        page = build_compare_report(_json(file), seed=seed)
    elif kind == "bench":
        from tunesift.report.bench_report import build_bench_report

        page = build_bench_report(_json(file))
    elif kind == "evaluate":
        from tunesift.report.bench_report import build_evaluate_report

        page = build_evaluate_report(_json(file))
    else:
        from tunesift.report.tasks_report import build_tasks_report, read_tasks_run

        page = build_tasks_report(*read_tasks_run(file))
    page.write(out)
    return kind, page
