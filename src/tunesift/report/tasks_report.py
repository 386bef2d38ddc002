"""The report of ``tasks`` (GradEx): how well the estimates track real fine-tunes, which tasks
were chosen, and each task's coefficient.

Built from what ``tunesift tasks`` writes in its ``--out`` folder: ``selection.json`` (``tasks
select``: the chosen tasks, the ensemble scores and OLS coefficients, the target test losses)
and ``validation.json`` (``tasks validate``: estimated against true fine-tuned losses on
held-out subsets). Either may be missing; the report draws what the other holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunesift.errors import InputError
from tunesift.report import figures
from tunesift.report.page import Page

SELECTION, VALIDATION = "selection.json", "validation.json"


def read_tasks_run(path: str | Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(selection report, validation report) from a tasks folder, or from one of its files."""
    p = Path(path)
    files = [p / SELECTION, p / VALIDATION] if p.is_dir() else [p]
    found: dict[str, dict[str, Any]] = {}
    for f in files:
        if not f.is_file():
            continue
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"not a readable JSON file ({exc})", f) from None
        for key in ("selection", "validation"):
            if isinstance(data, dict) and key in data:
                found[key] = data
    if not found:
        raise InputError(f"no tasks output ({SELECTION} or {VALIDATION}) here", p)
    return found.get("selection"), found.get("validation")


def build_tasks_report(
    selection: Mapping[str, Any] | None, validation: Mapping[str, Any] | None
) -> Page:
    run = selection or validation or {}
    names = list((run.get("tasks") or {}).keys())
    page = Page(
        "tunesift tasks: GradEx",
        f"{len(names)} source tasks; λ {run.get('lam', float('nan')):.4g}",
    )
    page.section("Do the estimates track real fine-tunes?")
    if validation is None:
        page.missing_figure(
            "validation",
            "no validation.json: run 'tunesift tasks validate' with the same settings and --out",
        )
    else:
        _validation(page, validation["validation"])
    page.section("The chosen tasks")
    if selection is None:
        page.missing_figure(
            "coefficients", "no selection.json: run 'tunesift tasks select' into this --out"
        )
    else:
        _selection(page, selection, names)
    page.section("The run")
    page.table(
        ["", "value"],
        [["command", run.get("command")], ["λ", run.get("lam")], ["fit cache", run.get("fit")]],
        left=(0, 1),
    )
    page.json_block("tasks", run.get("tasks") or {})
    if run.get("calibration"):
        cal = dict(run["calibration"])
        cal.pop("subsets", None)
        page.json_block("calibration", cal)
    page.json_block("store", run.get("store_meta") or {})
    return page


def _validation(page: Page, val: Mapping[str, Any]) -> None:
    true, est = val["true"], val["estimated"]
    page.figure(
        "validation",
        figures.scatter_xy(
            est,
            true,
            key="validation",
            title="estimated vs true fine-tuned loss",
            xlabel="GradEx estimate",
            ylabel="true loss after fine-tuning",
        ),  # fmt: skip
        f"{len(true)} held-out random subsets of the tasks: Spearman {val['spearman']:.3f}, "
        f"relative error {val['relative_error']:.4f} (dotted: estimate = truth).",
    )
    rows = [["GradEx", val["relative_error"], val["spearman"]]]
    rows += [[n, r.get("relative_error"), r.get("spearman")] for n, r in val["others"].items()]
    page.table(["predictor", "relative error", "Spearman"], rows)


def _selection(page: Page, report: Mapping[str, Any], names: list[str]) -> None:
    sel = report["selection"]
    chosen = set(sel.get("chosen") or [])
    scores, ols = sel.get("scores") or {}, sel.get("ols") or {}
    names = names or sorted(set(scores) | set(ols) | chosen)
    page.table(
        ["task", "chosen", "ensemble score (lower is better)", "OLS coefficient"],
        [[n, "yes" if n in chosen else "", scores.get(n), ols.get(n)] for n in names],
    )
    page.paragraph(f"Rule {sel.get('rule')}: {len(chosen)} of {len(names)} tasks chosen.")
    if ols:
        page.figure(
            "coefficients",
            figures.bars(
                names,
                [ols.get(n, 0.0) for n in names],
                key="coefficients",
                title="per-task OLS coefficient (chosen in blue)",
                xlabel="effect on the estimated target loss",
                highlight=[n in chosen for n in names],
            ),  # fmt: skip
            "The coefficient of each task's inclusion in a regression of the estimated target "
            "loss over the random subsets: negative lowers the loss.",
        )
    if scores:
        page.figure(
            "ensemble_scores",
            figures.bars(
                names,
                [scores.get(n, 0.0) for n in names],
                key="ensemble_scores",
                title="ensemble score per task (chosen in blue)",
                xlabel="mean estimated loss of the subsets holding the task",
                highlight=[n in chosen for n in names],
            ),  # fmt: skip
            "Lower is better: the tasks whose subsets are estimated to fine-tune best.",
        )
    test = report.get("target_test")
    if test:
        page.heading("Held-out target")
        page.table(
            ["model", "token loss"],
            [
                ["base", test["base"].get("token_loss")],
                ["fine-tuned on the chosen tasks", test["chosen"].get("token_loss")],
            ],  # fmt: skip
        )
