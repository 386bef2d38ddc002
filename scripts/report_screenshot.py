"""The README's screenshot of a select report (issue 16, acceptance 4): docs/report-select.png.

    python scripts/report_screenshot.py runs/default/report.html docs/report-select.png

Opens the report the way the browser tests do (``tests/headless.py``: Debian's headless
Chromium, no network, a full-page screenshot 1,150 px wide), fails unless every figure is drawn
and the page logged nothing and asked for nothing, then scales the shot to ``--width`` pixels and
stores it with a ``--colours`` palette, so that the committed PNG stays small.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from headless import blank_figures, open_report  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--width", type=int, default=1000, help="pixels (default 1000)")
    ap.add_argument("--colours", type=int, default=64, help="palette size (default 64)")
    args = ap.parse_args()
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        r = open_report(args.report, Path(tmp))
        problems = (
            r.console + r.requests + blank_figures(r) + [f"not drawn: {m}" for m in r.missing]
        )
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        img = Image.open(r.screenshot).convert("RGB")
    height = round(img.height * args.width / img.width)
    img = img.resize((args.width, height), Image.Resampling.LANCZOS)
    # an octree palette keeps the few red target points, which a median cut merges into grey
    img = img.quantize(
        colors=args.colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )
    img.save(args.out, optimize=True)
    print(f"wrote {args.out}: {args.width}x{height}, {args.out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
