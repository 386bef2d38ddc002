"""One self-contained HTML page: inline CSS, inline SVG figures, no script, no external resource.

Every piece of user text (file names, record texts, parameters) goes through ``html.escape``;
only the SVG that ``report.figures`` drew is inlined as markup. The page opens from a mail
attachment, with no server and no network: it references nothing outside itself.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunesift._version import __version__
from tunesift.outputs import write_text_atomic

CSS = """
body{font-family:sans-serif;margin:0;padding:16px 24px;color:#222;background:#fff;max-width:1100px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:17px;margin:26px 0 6px;border-bottom:1px solid #ddd}
h3{font-size:14px;margin:14px 0 4px}p,li{font-size:13px;line-height:1.45}
.sub{color:#666;font-size:12px;margin:0 0 10px}
.grid{display:flex;flex-wrap:wrap;gap:14px}
figure.fig{margin:0;width:520px;border:1px solid #eee;padding:6px;box-sizing:border-box}
figure.wide{width:1060px}
figure.fig .plot svg{width:100%;height:auto;display:block}
figcaption{font-size:12px;color:#555;margin-top:4px}
figure.missing{background:#fafafa;color:#777}
table{border-collapse:collapse;font-size:12px;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f4f4f4}td.l,th.l{text-align:left}
.text{max-width:520px;text-align:left;white-space:pre-wrap;font-family:serif;font-size:13px}
.note{font-size:12px;color:#8a5a00}
pre{font-size:11px;background:#f7f7f7;padding:8px;overflow-x:auto;max-width:1060px}
"""


class Page:
    """Build the report top to bottom: headings, paragraphs, tables and figures."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.parts: list[str] = [f"<h1>{_e(title)}</h1>"]
        if subtitle:
            self.parts.append(f'<p class="sub">{_e(subtitle)}</p>')
        self._grid_open = False
        self.figures: list[str] = []
        self.missing: dict[str, str] = {}

    # ---- text --------------------------------------------------------------------------------

    def section(self, title: str, intro: str = "") -> None:
        self._close_grid()
        self.parts.append(f"<h2>{_e(title)}</h2>")
        if intro:
            self.paragraph(intro)

    def heading(self, title: str) -> None:
        self._close_grid()
        self.parts.append(f"<h3>{_e(title)}</h3>")

    def paragraph(self, text: str, css: str = "") -> None:
        self._close_grid()
        cls = f' class="{css}"' if css else ""
        self.parts.append(f"<p{cls}>{_e(text)}</p>")

    def note(self, text: str) -> None:
        self.paragraph(text, "note")

    def preformatted(self, text: str) -> None:
        self._close_grid()
        self.parts.append(f"<pre>{_e(text)}</pre>")

    def json_block(self, title: str, obj: Any) -> None:
        self.heading(title)
        self.preformatted(json.dumps(obj, indent=2, sort_keys=True, default=str))

    # ---- figures -----------------------------------------------------------------------------

    def figure(self, name: str, svg: str, caption: str = "", wide: bool = False) -> None:
        """An inline SVG figure; ``name`` identifies it (``data-figure``) for tests and links."""
        self._open_grid()
        cls = "fig wide" if wide else "fig"
        cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
        self.parts.append(
            f'<figure class="{cls}" id="fig-{_e(name)}" data-figure="{_e(name)}">'
            f'<div class="plot">{svg}</div>{cap}</figure>'
        )
        self.figures.append(name)

    def missing_figure(self, name: str, reason: str) -> None:
        """A figure that could not be drawn, and why (the rest of the report still renders)."""
        self._open_grid()
        self.parts.append(
            f'<figure class="fig missing" data-missing="{_e(name)}">'
            f"<p><b>{_e(name)}</b> not shown: {_e(reason)}</p></figure>"
        )
        self.missing[name] = reason

    # ---- tables ------------------------------------------------------------------------------

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        left: Sequence[int] = (0,),
        text_columns: Sequence[int] = (),
    ) -> None:
        """A table of values; columns in ``left`` align left, ``text_columns`` wrap long text."""
        self._close_grid()

        def cell(k: int, v: Any, tag: str) -> str:
            cls = "text" if k in text_columns and tag == "td" else "l" if k in left else ""
            attr = f' class="{cls}"' if cls else ""
            return f"<{tag}{attr}>{_e(_fmt(v))}</{tag}>"

        head = "".join(cell(k, h, "th") for k, h in enumerate(headers))
        body = "".join(
            "<tr>" + "".join(cell(k, v, "td") for k, v in enumerate(r)) + "</tr>" for r in rows
        )
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    # ---- output ------------------------------------------------------------------------------

    def html(self) -> str:
        self._close_grid()
        footer = (
            f'<p class="sub">Made by tunesift {_e(__version__)}. This file is self-contained: '
            "no script, no network request; figures are inline SVG.</p>"
        )
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(self.title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(self.parts)
            + f"\n{footer}\n</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the page atomically (``tunesift.outputs``)."""
        return write_text_atomic(path, self.html())

    def _open_grid(self) -> None:
        if not self._grid_open:
            self.parts.append('<div class="grid">')
            self._grid_open = True

    def _close_grid(self) -> None:
        if self._grid_open:
            self.parts.append("</div>")
            self._grid_open = False


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        return f"{v:,.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def shorten(text: str, limit: int = 400) -> str:
    """A record's text for a table cell: whitespace folded, cut at ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
