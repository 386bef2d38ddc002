"""The report of ``compare``: the table, composition per method, pairwise overlap, and each
method's picks on one shared 2-D map.

Built from ``Comparison.to_dict()`` (what ``compare --save x.json`` writes), plus, when the
comparison is still in hand, each method's selected rows and the feature cache folders: the map
needs both, and a saved comparison holds neither (its report says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.features.store import open_cached
from tunesift.report import figures
from tunesift.report.page import Page
from tunesift.report.select_report import MAP_POOL, MAP_SELECTED, MAP_TARGET, Projection, sample

TOP_SOURCES = 8


def build_compare_report(
    data: Mapping[str, Any],
    *,
    selections: Mapping[str, np.ndarray] | None = None,
    features_cache: Mapping[str, str | None] | None = None,
    seed: int = 0,
) -> Page:
    """``data``: a comparison as ``Comparison.to_dict()`` gives it; ``selections``: each
    method's selected pool rows; ``features_cache``: the pool and target cache folders."""
    results = list(data["results"])
    names = [r["method"] for r in results]
    b = data.get("budget") or {}
    what = f"{b['documents']:,} documents" if b.get("documents") else f"{b.get('tokens'):,} tokens"
    page = Page(
        f"tunesift compare: {len(results)} methods",
        f"{what} from a pool of {data['pool_size']:,} for a target of {data['target_size']:,} "
        f"(features: {data.get('featurizer')})",
    )
    page.section("The methods on the same yardsticks")
    ref = data.get("reference") or {}
    rows = [
        [r["method"], r["seconds"], r["documents"], r["tokens"], r["kl_reduction"], r["ot_cost"],
         _pct(r["exact_duplicates"]), _pct(r["near_duplicates"])]
        for r in results
    ]  # fmt: skip
    if "ot_cost_pool" in ref:
        rows.append(["(whole pool)", None, data["pool_size"], None, 0.0, ref["ot_cost_pool"]])
        rows[-1] += [None, None]
    page.table(
        ["method", "time s", "docs", "tokens", "KL reduction", "OT cost", "dup %", "near-dup %"],
        rows,
    )
    page.paragraph(
        "KL reduction: how much closer the selection's hashed n-grams are to the target's than "
        "the pool's (higher is better). OT cost: entropic OT from the selection to the target "
        f"(eps {ref.get('ot_epsilon_absolute', float('nan')):.4g}; lower is closer)."
    )
    _yardsticks(page, results, ref)
    _composition(page, results, ref.get("pool_by_source"))
    if len(names) > 1:
        matrix = np.array([[data["overlap"][a][c] for c in names] for a in names], dtype=float)
        page.figure(
            "overlap",
            figures.heatmap(names, matrix, key="overlap", title="pairwise Jaccard overlap"),
            "Jaccard overlap of the selected sets, for every pair of methods.",
        )
    _maps(page, data, selections, features_cache, seed)
    page.section("The run")
    page.json_block("budget", b)
    page.json_block("parameters", {r["method"]: r.get("params", {}) for r in results})
    return page


def write_compare_report(path: str | Path, comparison: Any, *, seed: int = 0) -> Page:
    """The report of a ``Comparison`` in hand (with its selections, so with the map)."""
    sels = comparison.selections
    first = next(iter(sels.values()), None)
    cache = (first.info.get("features_cache") if first is not None else None) or {}
    page = build_compare_report(
        comparison.to_dict(),
        selections={m: s.indices for m, s in sels.items()},
        features_cache=cache,
        seed=seed,
    )
    page.write(path)
    return page


def _pct(v: float | None) -> float | None:
    return None if v is None else round(100 * v, 2)


def _yardsticks(page: Page, results: list[dict[str, Any]], ref: dict[str, Any]) -> None:
    names = [r["method"] for r in results]
    ot = [r["ot_cost"] for r in results]
    if all(v is not None for v in ot):
        page.figure(
            "ot_cost",
            figures.bars(
                names,
                ot,
                key="ot_cost",
                title="OT cost to the target (lower is closer)",
                xlabel="entropic OT cost",
            ),  # fmt: skip
            "Each selection's OT cost to the target"
            + (
                f"; the whole pool's is {ref['ot_cost_pool']:.4g}."
                if "ot_cost_pool" in ref
                else "."
            ),
        )
    kl = [r["kl_reduction"] for r in results]
    if all(v is not None for v in kl):
        page.figure(
            "kl_reduction",
            figures.bars(
                names,
                kl,
                key="kl",
                title="KL reduction on hashed n-grams (higher is better)",
                xlabel="nats",
            ),  # fmt: skip
            "How much closer each selection's n-grams are to the target's than the pool's.",
        )


def _composition(page: Page, results: list[dict[str, Any]], pool: dict[str, int] | None) -> None:
    if not pool:
        page.missing_figure("composition", "the pool had no sources (features only)")
        return
    order = sorted(pool, key=lambda s: (-pool[s], s))
    shown = order[:TOP_SOURCES]
    columns = shown + (["other"] if len(order) > TOP_SOURCES else [])
    labels = ["(pool)"] + [r["method"] for r in results]
    counts = [pool] + [r["by_source"] for r in results]
    shares = np.zeros((len(labels), len(columns)))
    for i, c in enumerate(counts):
        total = max(sum(c.values()), 1)
        for j, s in enumerate(shown):
            shares[i, j] = c.get(s, 0) / total
        if len(columns) > len(shown):
            shares[i, -1] = sum(v for s, v in c.items() if s not in shown) / total
    page.figure(
        "composition",
        figures.stacked_shares(
            labels, columns, shares, key="composition", title="composition by source"
        ),  # fmt: skip
        "Share of each source in each method's selection; the pool's on top.",
    )


def _maps(
    page: Page,
    data: Mapping[str, Any],
    selections: Mapping[str, np.ndarray] | None,
    cache: Mapping[str, str | None] | None,
    seed: int,
) -> None:
    if not selections:
        page.missing_figure(
            "maps", "a saved comparison holds no selected rows: use compare --report for the map"
        )
        return
    pool_dir, target_dir = (cache or {}).get("pool"), (cache or {}).get("target")
    x_pool = open_cached(pool_dir) if pool_dir else None
    x_target = open_cached(target_dir) if target_dir else None
    if x_pool is None or x_target is None or len(x_pool) != data["pool_size"]:
        page.missing_figure("maps", "the features are not in the cache (not recomputed)")
        return
    rng = np.random.default_rng(seed)
    pool_rows = sample(len(x_pool), MAP_POOL, rng)
    target_rows = sample(len(x_target), MAP_TARGET, rng)
    xp, xt = x_pool[pool_rows], x_target[target_rows]
    proj = Projection.fit(xp, xt)
    panels = []
    for name, rows in selections.items():
        picked = np.sort(np.asarray(rows)[sample(len(rows), MAP_SELECTED, rng)])
        panels.append([
            (name, proj.xy(x_pool[picked]), figures.SELECTED, 5.0),
            ("target", proj.xy(xt), figures.TARGET, 3.0),
        ])  # fmt: skip
    svg = figures.points_panels(
        panels, key="maps", title="each method's picks (blue) with the target (red) on one map",
        background=proj.xy(xp), ncols=3,
    )  # fmt: skip
    k = max(len(r) for r in selections.values())
    page.figure(
        "maps",
        svg,
        f"PCA of pool and target features (one projection for all panels): grey "
        f"{len(pool_rows):,} of {len(x_pool):,} pool points, red {len(target_rows):,} of "
        f"{len(x_target):,} target points, blue up to {min(k, MAP_SELECTED):,} of each method's "
        f"{k:,} picks.",
        wide=True,
    )
