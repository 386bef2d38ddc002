"""The report's figures: matplotlib drawn off-screen, returned as SVG text to inline in the page.

No pyplot (no global figure state, no GUI backend): each function builds a ``Figure``, draws,
and ``to_svg`` renders it with the SVG backend. Text stays text (``svg.fonttype: none``, the
browser's sans-serif), dense scatter layers are rasterized into one PNG inside the SVG, and the
output is deterministic: no date, and ids salted with the figure's key so that two figures
inlined in one page never share a clip-path id.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

#: colours (matplotlib's tab10), named for what they show in every report
POOL, TARGET, SELECTED, OTHER = "#b0b0b0", "#d62728", "#1f77b4", "#ff7f0e"
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
WIDTH = 7.0  # inches; at 72 px per inch the page shows figures ~500 px wide


#: fixed margins (left, bottom, right, top; inches) of one axes with numeric ticks and a title
NUMERIC_MARGINS = (0.8, 0.5, 0.15, 0.3)


def new_figure(
    height: float = 3.6,
    width: float = WIDTH,
    margins: tuple[float, float, float, float] | None = None,
) -> Any:
    """A figure laid out by matplotlib's constrained layout, or with fixed ``margins``.

    The constrained layout measures every tick label before drawing, ~0.1 s of CPU a figure
    (measured); figures whose labels are short numbers take fixed margins instead.
    """
    from matplotlib.figure import Figure

    if margins is None:
        return Figure(figsize=(width, height), layout="constrained")
    fig = Figure(figsize=(width, height))
    left, bottom, right, top = margins
    fig.subplots_adjust(
        left=left / width, bottom=bottom / height, right=1 - right / width, top=1 - top / height
    )
    return fig


def to_svg(fig: Any, key: str) -> str:
    """The figure as an ``<svg>`` element (no XML prolog), deterministic for equal input."""
    import matplotlib

    buf = io.StringIO()
    rc = {"svg.fonttype": "none", "svg.hashsalt": f"tunesift-{key}", "font.size": 9}
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]
        fig.savefig(buf, format="svg", metadata={"Date": None}, dpi=100)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # the browser scales the figure to its box; keep its aspect ratio from the viewBox
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)


def points_panels(
    panels: Sequence[Sequence[tuple[str, np.ndarray, str, float]]],
    *,
    key: str,
    title: str,
    xlabel: str = "PC 1",
    ylabel: str = "PC 2",
    background: np.ndarray | None = None,
    ncols: int = 1,
) -> str:
    """One scatter per panel, on shared axes; ``background`` (grey) under every panel."""
    n = len(panels)
    cols = min(ncols, n)
    rows = (n + cols - 1) // cols
    width = WIDTH if cols == 1 else 3.0 * cols
    if cols == 1:  # no ticks: the labels' size is known
        fig = new_figure(height=4.2, width=width, margins=(0.35, 0.35, 0.1, 0.35))
    else:
        fig = new_figure(height=2.9 * rows, width=width)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    for ax, layers in zip(axes, panels, strict=False):
        if background is not None and len(background):
            ax.scatter(*background.T, s=3, c=POOL, alpha=0.5, linewidths=0, rasterized=True)
        for label, xy, colour, size in layers:
            if len(xy):
                ax.scatter(
                    *np.asarray(xy).T, s=size, c=colour, alpha=0.8, linewidths=0,
                    label=label, rasterized=True,
                )  # fmt: skip
        if cols > 1:
            ax.set_title(layers[0][0] if layers else "", fontsize=9)
        else:
            ax.legend(loc="best", fontsize=8, markerscale=2, frameon=False)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[(rows - 1) * cols :]:
        ax.set_xlabel(xlabel)
    for ax in axes[::cols]:
        ax.set_ylabel(ylabel)
    fig.suptitle(title, fontsize=10)
    return to_svg(fig, key)


def share_bars(
    names: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
    *,
    key: str,
    title: str,
    xlabel: str = "share",
) -> str:
    """Horizontal grouped bars: one group per name, one bar per (label, values, colour) series."""
    fig = new_figure(height=max(2.0, 0.32 * len(names) * max(len(series), 1) + 1.0))
    ax = fig.subplots()
    y = np.arange(len(names))
    h = 0.8 / max(len(series), 1)
    for k, (label, values, colour) in enumerate(series):
        ax.barh(y + (k - (len(series) - 1) / 2) * h, values, height=h, color=colour, label=label)
    ax.set_yticks(y, [str(n) for n in names])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_formatter(_percent())
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    return to_svg(fig, key)


def stacked_shares(
    rows: Sequence[str], columns: Sequence[str], shares: np.ndarray, *, key: str, title: str
) -> str:
    """One horizontal bar per row, split by column share (rows sum to 1)."""
    fig = new_figure(height=max(2.0, 0.35 * len(rows) + 1.4))
    ax = fig.subplots()
    left = np.zeros(len(rows))
    for j, name in enumerate(columns):
        ax.barh(
            np.arange(len(rows)), shares[:, j], left=left, height=0.7,
            color=PALETTE[j % len(PALETTE)], label=str(name),
        )  # fmt: skip
        left += shares[:, j]
    ax.set_yticks(np.arange(len(rows)), [str(r) for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(_percent())
    ax.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=min(len(columns), 5),
        fontsize=8, frameon=False,
    )  # fmt: skip
    ax.set_title(title, fontsize=10)
    return to_svg(fig, key)


def score_histogram(
    pool: np.ndarray | None,
    selected: np.ndarray,
    cut: float | None,
    *,
    key: str,
    title: str,
    xlabel: str,
) -> str:
    """Histogram of the pool's scores with the selected items' overlaid and the cut marked.

    Counted with ``np.histogram`` and drawn as filled steps: one path per series, where
    ``ax.hist`` draws one rectangle per bin (on 1M scores: 1.0 s against 0.7 s CPU, 45 KB
    against 25 KB of SVG; measured).
    """
    fig = new_figure(height=3.2, margins=NUMERIC_MARGINS)
    ax = fig.subplots()
    finite_sel = selected[np.isfinite(selected)]
    base = pool[np.isfinite(pool)] if pool is not None else finite_sel
    edges = np.histogram_bin_edges(base if len(base) else [0.0, 1.0], bins=60)
    layers = [("pool", base, POOL)] if pool is not None else []
    for label, values, colour in layers + [("selected", finite_sel, SELECTED)]:
        counts = np.histogram(values, bins=edges)[0].astype(float)
        # log axis: an empty bin is drawn down to the axis' floor, not to log(0)
        ax.stairs(counts, edges, fill=True, color=colour, label=label, baseline=0.5)
    if cut is not None and np.isfinite(cut):
        ax.axvline(cut, color=TARGET, linestyle="--", linewidth=1.2, label="budget cut")
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5)
    log_counts_axis(ax.yaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("items (log)")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    return to_svg(fig, key)


def curves(
    x: Sequence[float],
    series: Sequence[tuple[str, Sequence[float | None], str]],
    *,
    key: str,
    title: str,
    xlabel: str,
    ylabel: str,
    hline: tuple[str, float] | None = None,
    logx: bool = True,
) -> str:
    """Lines with markers over ``x`` (None values are gaps); an optional reference line."""
    fig = new_figure(height=3.2, margins=NUMERIC_MARGINS)
    ax = fig.subplots()
    for label, ys, colour in series:
        values = np.array([np.nan if v is None else v for v in ys], dtype=float)
        ax.plot(x, values, marker="o", color=colour, label=label)
    if hline is not None:
        ax.axhline(hline[1], color=POOL, linestyle=":", label=hline[0])
    if logx and len(x) and min(x) > 0:
        ax.set_xscale("log")
        plain_log_labels(ax.xaxis, ticks=x)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    return to_svg(fig, key)


def step_histograms(
    edges: Sequence[float],
    series: Sequence[tuple[str, Sequence[float], str]],
    *,
    key: str,
    title: str,
    xlabel: str,
) -> str:
    """Histograms given as counts over shared ``edges``, each normalized to a share."""
    fig = new_figure(height=3.2, margins=NUMERIC_MARGINS)
    ax = fig.subplots()
    e = np.asarray(edges, dtype=float)
    for label, counts, colour in series:
        c = np.asarray(counts, dtype=float)
        share = c / c.sum() if c.sum() else c
        ax.stairs(share, e, color=colour, label=label, linewidth=1.5, fill=False)
    if e[0] > 0:
        ax.set_xscale("log")
        plain_log_labels(ax.xaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of items")
    ax.yaxis.set_major_formatter(_percent())
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    return to_svg(fig, key)


def heatmap(names: Sequence[str], matrix: np.ndarray, *, key: str, title: str) -> str:
    """A square matrix of values in [0, 1], each cell labelled."""
    n = len(names)
    fig = new_figure(height=max(2.6, 0.45 * n + 1.2), width=max(3.6, 0.55 * n + 2.0))
    ax = fig.subplots()
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), [str(s) for s in names], rotation=45, ha="right")
    ax.set_yticks(range(n), [str(s) for s in names])
    for i in range(n):
        for j in range(n):
            v = matrix[i, j]
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if v > 0.6 else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=10)
    return to_svg(fig, key)


def error_bars(
    labels: Sequence[str],
    values: Sequence[float],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    *,
    key: str,
    title: str,
    xlabel: str,
    reference: float | None = None,
) -> str:
    """One point per label with its interval, as horizontal error bars."""
    fig = new_figure(height=max(1.8, 0.32 * len(labels) + 1.0))
    ax = fig.subplots()
    v = np.asarray(values, dtype=float)
    lo = np.array([x if lo_ is None else lo_ for x, lo_ in zip(v, lows, strict=True)], dtype=float)
    hi = np.array([x if h is None else h for x, h in zip(v, highs, strict=True)], dtype=float)
    y = np.arange(len(labels))
    err = np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])
    ax.errorbar(v, y, xerr=err, fmt="o", color=SELECTED, ecolor=SELECTED, capsize=3)
    if reference is not None:
        ax.axvline(reference, color=POOL, linestyle=":")
    ax.set_yticks(y, [str(s) for s in labels])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.margins(y=0.15)
    return to_svg(fig, key)


def scatter_xy(
    x: Sequence[float],
    y: Sequence[float],
    *,
    key: str,
    title: str,
    xlabel: str,
    ylabel: str,
    diagonal: bool = True,
) -> str:
    """Points (x, y) with the y = x diagonal: estimated against measured."""
    fig = new_figure(height=3.8, width=4.6)
    ax = fig.subplots()
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ax.scatter(xs, ys, s=18, c=SELECTED, alpha=0.8, linewidths=0)
    if diagonal and len(xs):
        lo = float(min(xs.min(), ys.min()))
        hi = float(max(xs.max(), ys.max()))
        ax.plot([lo, hi], [lo, hi], color=POOL, linestyle=":", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return to_svg(fig, key)


def bars(
    names: Sequence[str],
    values: Sequence[float],
    *,
    key: str,
    title: str,
    xlabel: str,
    highlight: Sequence[bool] | None = None,
) -> str:
    """Horizontal bars, one per name; highlighted ones in the selection colour."""
    fig = new_figure(height=max(1.8, 0.28 * len(names) + 1.0))
    ax = fig.subplots()
    colours = [SELECTED if (highlight is None or highlight[k]) else POOL for k in range(len(names))]
    ax.barh(np.arange(len(names)), values, color=colours, height=0.7)
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_yticks(np.arange(len(names)), [str(n) for n in names])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    return to_svg(fig, key)


def plain_log_labels(axis: Any, ticks: Sequence[float] | None = None) -> None:
    """Label a log axis in plain text ("100", "10k"), or at ``ticks`` ("3,125").

    matplotlib's default log labels are mathtext (10 to a power), whose layout costs ~0.4 s of
    CPU a figure, more than the rest of the figure (measured; docs/benchmarks.md).
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    if ticks is not None:
        axis.set_major_locator(FixedLocator([float(t) for t in ticks]))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
        return
    axis.set_major_formatter(FuncFormatter(lambda v, _: _compact(v)))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: _minor_label(axis, v)))


def log_counts_axis(axis: Any) -> None:
    """A log axis of counts over many decades: plain labels at the powers of ten, no minor
    ticks (eight unlabelled ticks a decade cost a third of a histogram's drawing time)."""
    from matplotlib.ticker import NullLocator

    plain_log_labels(axis)
    axis.set_minor_locator(NullLocator())


def _compact(v: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= scale:
            return f"{v / scale:g}{suffix}"
    return f"{v:g}"


def _minor_label(axis: Any, v: float) -> str:
    """2s and 5s between the powers of ten, on an axis spanning under three decades."""
    lo, hi = sorted(axis.get_view_interval())
    if lo <= 0 or v <= 0 or hi / lo > 1000:
        return ""
    mantissa = round(v / 10 ** np.floor(np.log10(v)), 6)
    return _compact(v) if mantissa in (2.0, 5.0) else ""


def _percent() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)
