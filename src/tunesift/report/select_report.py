"""The report of one ``select`` run: where the picks sit, why they were picked, what it cost.

Read from the run's saved outputs (``report.select_run``); the only computing is cheap and
bounded whatever the pool's size: a 2-D PCA of seeded samples (``MAP_POOL`` pool points,
``MAP_SELECTED`` picks, ``MAP_TARGET`` target points), cosine nearest neighbours for a dozen
items, and a handful of entropic OT solves on at most ``OT_ROWS`` rows each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.features.vectors import normalize_rows
from tunesift.methods import METHODS
from tunesift.models.seeds import torch_threads
from tunesift.ot.sinkhorn import estimate_cost_scale, sinkhorn
from tunesift.report import figures
from tunesift.report.page import Page, shorten
from tunesift.report.select_run import SelectRun, all_texts, load_select_run

logger = logging.getLogger(__name__)

MAP_POOL, MAP_SELECTED, MAP_TARGET = 4000, 2000, 2000
#: rows of a selection prefix (and of the target) in one OT solve of the budget curve
OT_ROWS = 1000
#: budgets of the OT curve: the budget halved this many times (while at least OT_MIN rows)
OT_STEPS, OT_MIN = 4, 8
PICKS_SHOWN, NOT_PICKED_SHOWN, NEIGHBOURS = 8, 5, 3
TARGET_TEXTS = 20_000
#: relative epsilon of the curve when the run has none of its own (GOT-D's default)
OT_EPSILON = 0.05


@dataclass
class Projection:
    """A 2-D PCA of pool and target samples: ``xy(rows)`` places any rows."""

    mean: np.ndarray
    axes: np.ndarray  # (2, d)
    explained: tuple[float, float]

    @classmethod
    def fit(cls, *blocks: np.ndarray) -> Projection:
        x = np.vstack([np.asarray(b, dtype=np.float64) for b in blocks])
        mean = x.mean(axis=0)
        xc = x - mean
        if xc.shape[1] <= xc.shape[0]:
            # narrow (embeddings): the d x d covariance's eigenvectors, cheaper than an SVD
            values, vectors = np.linalg.eigh(xc.T @ xc)
            top = np.argsort(values, kind="stable")[::-1][:2]
            axes = vectors[:, top].T
        else:
            # wide (10,000 hashed n-grams, a few hundred rows): the n x n Gram matrix's
            # eigenvectors u give the axes xc.T u / |xc.T u|, with the same eigenvalues
            values, u = np.linalg.eigh(xc @ xc.T)
            top = np.argsort(values, kind="stable")[::-1][:2]
            axes = (xc.T @ u[:, top]).T
            axes /= np.maximum(np.linalg.norm(axes, axis=1, keepdims=True), 1e-300)
        # a fixed sign per axis (largest loading positive), so equal inputs give equal pictures
        axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
        if len(axes) < 2:
            axes = np.vstack([axes, np.zeros((2 - len(axes), x.shape[1]))])
        var = np.clip(values[top], 0, None) / max(float(np.clip(values, 0, None).sum()), 1e-300)
        return cls(mean, axes, (float(var[0]), float(var[1]) if len(var) > 1 else 0.0))

    def xy(self, rows: np.ndarray) -> np.ndarray:
        return (np.asarray(rows, dtype=np.float64) - self.mean) @ self.axes.T


def sample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` of ``range(n)`` (all when ``n <= k``), sorted: memory-mapped rows read in order."""
    if n <= k:
        return np.arange(n)
    return np.sort(rng.choice(n, size=k, replace=False))


def build_select_report(run: SelectRun, *, seed: int = 0) -> Page:
    """The page for one select run (figures that cannot be drawn say why)."""
    from threadpoolctl import threadpool_limits

    # One thread for numpy's BLAS and for torch: every product here is on a few thousand rows,
    # and idle OpenBLAS/OpenMP workers spin-wait; on a busy 2-core machine a second thread made
    # the OT curve's solves cost 8x the CPU time, and the PCA's one product 40x (measured,
    # docs/benchmarks.md). The results do not depend on the thread count.
    with threadpool_limits(limits=1, user_api="blas"), torch_threads(1):
        return _build(run, seed)


def _build(run: SelectRun, seed: int) -> Page:
    meta = run.meta
    counts = meta["counts"]
    page = Page(
        f"tunesift select: {run.method}",
        f"{counts['selected']:,} of {counts['pool']:,} pool items for a target of "
        f"{counts['target']:,}; sidecar {run.sidecar_path}",
    )
    rng = np.random.default_rng(seed)
    page.section("Where the picks sit")
    _map(page, run, rng)
    _sources(page, meta)
    page.section("How the budget cut the scores")
    _histogram(page, run)
    _ot_curve(page, run, np.random.default_rng(seed + 1))
    _lengths(page, meta)
    _why(page, run)
    _provenance(page, run)
    return page


def write_select_report(
    path: str | Path, sidecar: str | Path, *, scores: np.ndarray | None = None, seed: int = 0
) -> Page:
    """Read a select run back from ``sidecar`` (or its folder) and write its report to ``path``."""
    page = build_select_report(load_select_run(sidecar, scores=scores), seed=seed)
    page.write(path)
    return page


# ---- figures -------------------------------------------------------------------------------


def _map(page: Page, run: SelectRun, rng: np.random.Generator) -> None:
    if run.x_pool is None or run.x_target is None:
        reason = run.why_not.get("pool_features") or run.why_not.get("target_features", "")
        page.missing_figure("map", reason)
        return
    n_pool, n_target = len(run.x_pool), len(run.x_target)
    pool_rows = sample(n_pool, MAP_POOL, rng)
    sel_rows = np.sort(run.indices[sample(len(run.indices), MAP_SELECTED, rng)])
    target_rows = sample(n_target, MAP_TARGET, rng)
    xp, xs, xt = run.x_pool[pool_rows], run.x_pool[sel_rows], run.x_target[target_rows]
    proj = Projection.fit(xp, xt)
    layers = [
        (f"pool ({len(pool_rows):,} of {n_pool:,})", proj.xy(xp), figures.POOL, 4.0),
        (f"target ({len(target_rows):,} of {n_target:,})", proj.xy(xt), figures.TARGET, 7.0),
        (f"selected ({len(sel_rows):,} of {len(run.indices):,})", proj.xy(xs), figures.SELECTED, 7.0),
    ]  # fmt: skip
    ev = proj.explained
    svg = figures.points_panels(
        [layers], key="map", title="pool, target and selection on the first two principal axes",
        xlabel=f"PC 1 ({ev[0]:.0%} of the variance)", ylabel=f"PC 2 ({ev[1]:.0%})",
    )  # fmt: skip
    page.figure(
        "map",
        svg,
        f"PCA of a seeded sample of pool and target features; {len(pool_rows):,} of "
        f"{n_pool:,} pool points, {len(sel_rows):,} of {len(run.indices):,} picks and "
        f"{len(target_rows):,} of {n_target:,} target points shown.",
    )


def _sources(page: Page, meta: dict[str, Any]) -> None:
    pool, sel = meta.get("pool_by_source"), meta.get("selected_by_source")
    if not pool:
        page.missing_figure("sources", "the pool had no records (features only): no sources")
        return
    n_pool, n_sel = sum(pool.values()), max(sum((sel or {}).values()), 1)
    names = sorted(pool, key=lambda s: (-(sel or {}).get(s, 0), -pool[s], s))
    series = [
        ("pool", [pool[s] / n_pool for s in names], figures.POOL),
        ("selected", [(sel or {}).get(s, 0) / n_sel for s in names], figures.SELECTED),
    ]
    svg = figures.share_bars(names, series, key="sources", title="share of each source")
    page.figure("sources", svg, "Selected share per source beside the pool's share.")


def _histogram(page: Page, run: SelectRun) -> None:
    ascending = _ascending(run.method)
    sel = run.selected_scores
    cut = float(sel[-1]) if len(sel) and np.isfinite(sel[-1]) else None
    better = "lower" if ascending else "higher"
    caption = (
        f"Scores of {run.method} ({better} is better); the dashed line is the last pick's score."
    )
    if run.scores is None:
        caption += f" Pool scores not shown: {run.why_not.get('scores', '')}."
    if METHODS.get(run.method) is not None and "order" in vars(METHODS[run.method]):
        caption += f" {run.method} orders its picks by its own rule, not by score alone."
    svg = figures.score_histogram(
        run.scores, sel, cut, key="scores", title="score distribution and the budget's cut",
        xlabel="score",
    )  # fmt: skip
    page.figure("scores", svg, caption)


def _ascending(method: str) -> bool:
    cls = METHODS.get(method)
    return bool(getattr(cls, "ascending", False))


def _ot_curve(page: Page, run: SelectRun, rng: np.random.Generator) -> None:
    if run.x_pool is None or run.x_target is None:
        page.missing_figure("ot_curve", run.why_not.get("pool_features", "no features"))
        return
    k = len(run.indices)
    budgets = sorted({max(k >> j, 1) for j in range(OT_STEPS + 1) if (k >> j) >= OT_MIN} | {k})
    target = np.asarray(run.x_target[sample(len(run.x_target), OT_ROWS, rng)], dtype=np.float32)
    eps = (run.meta.get("diagnostics") or {}).get("eps_absolute")
    if not isinstance(eps, (int, float)) or not eps > 0:
        probe = np.asarray(run.x_pool[sample(len(run.x_pool), OT_ROWS, rng)], dtype=np.float32)
        eps = OT_EPSILON * estimate_cost_scale(probe, target, "median", seed=0)
    picks, random, capped = [], [], False
    for b in budgets:
        prefix = run.indices[:b]
        if b > OT_ROWS:
            prefix, capped = prefix[sample(b, OT_ROWS, rng)], True
        rows = np.sort(sample(len(run.x_pool), min(b, OT_ROWS), rng))
        picks.append(_ot(run.x_pool[np.sort(prefix)], target, eps))
        random.append(_ot(run.x_pool[rows], target, eps))
    pool_rows = sample(len(run.x_pool), OT_ROWS, rng)
    pool_cost = _ot(run.x_pool[pool_rows], target, eps)
    note = f" Sets above {OT_ROWS:,} rows are seeded samples of {OT_ROWS:,}." if capped else ""
    svg = figures.curves(
        budgets,
        [(f"{run.method}'s first k picks", picks, figures.SELECTED),
         ("k random pool items", random, figures.POOL)],
        key="ot_curve", title="OT distance to the target as the budget grows",
        xlabel="budget k (documents)", ylabel="entropic OT cost",
        hline=("whole pool (sample)", pool_cost),
    )  # fmt: skip
    page.figure(
        "ot_curve",
        svg,
        f"Entropic OT cost (squared Euclidean, eps {eps:.4g}) from the target to the picks "
        f"ranked 1..k, beside k random pool items.{note}",
    )


def _ot(x: np.ndarray, y: np.ndarray, eps: float) -> float:
    x = np.asarray(x, dtype=np.float32)
    return float(sinkhorn(x, y, float(eps), tol=1e-3, max_iter=500, device="cpu").cost)


def _lengths(page: Page, meta: dict[str, Any]) -> None:
    hist = meta.get("token_lengths")
    if not hist:
        page.missing_figure(
            "lengths", "the sidecar holds no token-length histogram (written by an older tunesift)"
        )
        return
    svg = figures.step_histograms(
        hist["edges"],
        [("pool", hist["pool"], figures.POOL), ("selected", hist["selected"], figures.SELECTED)],
        key="lengths", title="token lengths", xlabel="tokens (whitespace-separated words)",
    )  # fmt: skip
    page.figure("lengths", svg, "Token lengths of the pool and of the selection.")


# ---- why was this picked -------------------------------------------------------------------


def _why(page: Page, run: SelectRun) -> None:
    page.section(
        "Why was this picked?",
        "A sample of picks (spread over the ranks) and the best-scored pool items that were not "
        "picked, each with its nearest target texts (cosine similarity of the features).",
    )
    k = len(run.indices)
    ranks = np.unique(np.linspace(0, k - 1, num=min(PICKS_SHOWN, k)).round().astype(int))
    target_corpus = run.corpus("target")
    target_texts = all_texts(target_corpus, TARGET_TEXTS) if target_corpus else []
    picked = [(int(run.indices[r]), r + 1, run.record_text(run.records[r])) for r in ranks]
    missed = _near_misses(run)
    rows = [p[0] for p in picked] + [int(m["index"]) for m in missed or []]
    neighbours = _neighbours(run, rows, len(target_texts))
    page.heading("Picks")
    page.table(
        ["rank", "pool row", "score", "text", "nearest target texts"],
        [
            [rank, row, _score(run, row), shorten(text, 300), _near(neighbours, row, target_texts)]
            for row, rank, text in picked
        ],
        left=(3, 4), text_columns=(3, 4),
    )  # fmt: skip
    page.heading("Best-scored items not picked")
    if missed is None:
        page.note(f"Not shown: {run.why_not.get('scores', 'no pool scores')}.")
        return
    if not missed:
        page.paragraph("Every pool item was picked.")
        return
    last = run.selected_scores[-1] if len(run.selected_scores) else np.nan
    first = missed[0].get("score")
    better = first is not None and bool(first <= last if _ascending(run.method) else first >= last)
    page.paragraph(
        "Items scored at least as well as the last pick, left out by the method's own order or "
        "a per-source cap (budget.max_per_source: "
        f"{(run.meta.get('budget') or {}).get('max_per_source')})."
        if better
        else "The pool's best-scored items below the cut: what a slightly larger budget adds."
    )
    page.table(
        ["pool row", "source", "score", "text", "nearest target texts"],
        [
            [m["index"], m.get("source"), m.get("score"), shorten(m.get("text", _NO_TEXT), 300),
             _near(neighbours, int(m["index"]), target_texts)]
            for m in missed
        ],
        left=(1, 3, 4), text_columns=(3, 4),
    )  # fmt: skip


_NO_TEXT = "(no text: a features-only pool, or a sidecar from before tunesift kept near misses)"


def _near_misses(run: SelectRun) -> list[dict[str, Any]] | None:
    """The sidecar's near misses (with texts); else, from the scores file, without texts."""
    kept = run.meta.get("near_misses")
    if isinstance(kept, list):
        return kept
    if run.scores is None:
        return None
    key = run.scores.copy() if _ascending(run.method) else -run.scores
    key[~np.isfinite(key)] = np.inf
    key[run.indices] = np.inf
    n = min(NOT_PICKED_SHOWN, int(np.isfinite(key).sum()))
    if n == 0:
        return []
    best = np.argpartition(key, n - 1)[:n]
    return [
        {"index": int(i), "score": float(run.scores[i])}
        for i in best[np.argsort(key[best], kind="stable")]
    ]


def _neighbours(
    run: SelectRun, rows: list[int], n_target: int
) -> dict[int, list[tuple[int, float]]]:
    if run.x_pool is None or run.x_target is None or not rows or not n_target:
        return {}
    order = np.argsort(rows)
    rows_sorted = np.asarray(rows)[order]
    x = normalize_rows(np.asarray(run.x_pool[rows_sorted], dtype=np.float32))
    best: dict[int, list[tuple[int, float]]] = {int(r): [] for r in rows}
    for start in range(0, min(len(run.x_target), n_target), 8192):
        y = normalize_rows(np.asarray(run.x_target[start : start + 8192], dtype=np.float32))
        sims = x @ y.T
        for k, r in enumerate(rows_sorted):
            top = np.argsort(-sims[k], kind="stable")[:NEIGHBOURS]
            best[int(r)] += [(start + int(j), float(sims[k, j])) for j in top]
    return {r: sorted(v, key=lambda t: (-t[1], t[0]))[:NEIGHBOURS] for r, v in best.items()}


def _near(neighbours: dict[int, list[tuple[int, float]]], row: int, texts: list[str]) -> str:
    found = neighbours.get(row)
    if not found:
        return "(no features)"
    return "\n".join(f"[{sim:.2f}] {shorten(texts[j], 140)}" for j, sim in found)


def _score(run: SelectRun, row: int) -> float | None:
    if run.scores is not None:
        return float(run.scores[row])
    where = np.flatnonzero(run.indices == row)
    return float(run.selected_scores[where[0]]) if len(where) else None


# ---- provenance ----------------------------------------------------------------------------


def _provenance(page: Page, run: SelectRun) -> None:
    meta = run.meta
    page.section("The run")
    rows: list[tuple[str, Any]] = [
        ("method", run.method),
        ("featurizer", meta.get("featurizer")),
        ("seed", meta.get("seed")),
        ("budget", meta.get("budget")),
        ("command", meta.get("command")),
        ("inputs", meta.get("inputs")),
        ("timings (s)", meta.get("timings_s")),
        ("tunesift", meta.get("tunesift_version")),
        ("versions", meta.get("versions")),
    ]
    page.table(["", "value"], [[k, _plain(v)] for k, v in rows if v is not None], left=(0, 1))
    page.json_block("parameters", meta.get("params") or {})
    page.json_block("diagnostics", meta.get("diagnostics") or {})
    if run.why_not:
        page.heading("Not shown")
        page.table(["what", "why"], sorted(run.why_not.items()), left=(0, 1))


def _plain(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_plain(x)}" for k, x in v.items() if x is not None)
    if isinstance(v, list):
        return ", ".join(map(_plain, v))
    return str(v)
