"""The terminal summary that ends ``tunesift select``: where the selection came from, and how close it is."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from tunesift.selection import Selection


def composition_table(pool: Counter[str], selected: Counter[str], total_selected: int) -> list[str]:
    """Per source: pool share, selected share, and lift (selected share / pool share)."""
    n_pool = sum(pool.values())
    width = max([len("source"), *(len(s) for s in pool)])
    lines = [
        f"  {'source':<{width}}  {'pool':>8} {'pool%':>6}  {'selected':>8} {'sel%':>6}  {'lift':>5}"
    ]
    order = sorted(pool, key=lambda s: (-selected.get(s, 0), -pool[s], s))
    for s in order:
        p, k = pool[s], selected.get(s, 0)
        p_share = p / n_pool if n_pool else 0.0
        k_share = k / total_selected if total_selected else 0.0
        lift = f"{k_share / p_share:5.1f}x" if p_share else "    -"
        lines.append(f"  {s:<{width}}  {p:>8,} {p_share:>6.1%}  {k:>8,} {k_share:>6.1%}  {lift}")
    return lines


def group_counts(records: list[dict[str, Any]], field: str, top: int = 10) -> list[str]:
    counts = Counter(str(r.get(field, "")) for r in records)
    return [f"  {name or '(none)'}: {n}" for name, n in counts.most_common(top)]


def format_summary(
    selection: Selection, *, group_by: str | None = None, outputs: Sequence[str] = ()
) -> str:
    """A few lines a person reads after a run; every number also lives in the JSON sidecar."""
    d = selection.diagnostics
    lines = [
        f"tunesift select: {selection.method}, {selection.budget:,} of {selection.pool_size:,} pool "
        f"items for a target of {selection.target_size:,}"
    ]
    pool_counts = selection.pool_source_counts()
    sel_counts = selection.selected_source_counts()
    if pool_counts is not None and sel_counts is not None:
        lines.append("selected by source:")
        lines += composition_table(pool_counts, sel_counts, selection.budget)
    if group_by:
        lines.append(f"selected by {group_by} (top 10):")
        lines += group_counts(selection.records(), group_by)
    if "ot_cost_target_pool" in d:
        lines.append(
            f"OT cost (entropic, eps={d['eps_absolute']:.4g}): target-pool {d['ot_cost_target_pool']:.4f}, "
            f"target-selection {d['ot_cost_target_selection']:.4f}"
        )
    if "iterations" in d:
        state = "converged" if d["converged"] else "NOT converged"
        mode = ""
        if d.get("ot_mode") == "sampled":
            mode = f" (fitted on a sample of {d['fit_size']:,} pool items, extended by c-transform)"
        lines.append(
            f"Sinkhorn: {d['iterations']} iterations, marginal error {d['marginal_error']:.2e}, {state}{mode}"
        )
    bad = selection.info.get("bad_records", {})
    skipped = {k: v["skipped"] for k, v in bad.items() if v and v["skipped"]}
    if skipped:
        lines.append("bad records skipped: " + ", ".join(f"{k} {v:,}" for k, v in skipped.items()))
        for role, v in bad.items():
            for example in (v or {}).get("examples", [])[:5]:
                lines.append(f"  {role}: {example}")
    t = selection.info.get("timings_s", {})
    if t:
        lines.append(
            f"time: features {t['features']:.1f} s, {selection.method} {t['method']:.1f} s, total {t['total']:.1f} s"
        )
    for out in outputs:
        lines.append(f"wrote {out}")
    return "\n".join(lines)
