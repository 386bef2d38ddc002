"""Open a report in a real browser (Debian's headless Chromium) and check what a reader would see.

``open_report(html, folder)`` fails the test (never skips: CI installs Chromium) unless:
- the HTML references nothing outside itself (no script, link, frame or object; no src, href or
  CSS url() to http(s) or a protocol-relative address),
- Chromium, started with every host name unresolvable, logs no console message and its network
  log holds no request from the page,
- in a full-page PNG screenshot (written to ``folder``), every figure's plot box holds non-blank
  pixels (several colours, a few percent of the box not white).

The figure boxes come from a second load of an instrumented copy (one added script that writes
each ``[data-figure] .plot`` box into an attribute, printed by ``--dump-dom``) at the same
window width: the attribute changes no layout, so the boxes are those of the screenshot.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

WIDTH = 1150
MAX_HEIGHT = 16_000
EXTERNAL = [
    r"<\s*(script|link|iframe|frame|object|embed|base)\b",
    r"\b(src|href|xlink:href|action|poster)\s*=\s*[\"']?\s*(https?:)?//",
    r"url\(\s*[\"']?\s*(https?:)?//",
    r"@import",
]
BOXES = """<script>
document.body.setAttribute('data-boxes', JSON.stringify({
  height: Math.ceil(document.documentElement.scrollHeight),
  figures: Array.from(document.querySelectorAll('[data-figure] .plot')).map(function (e) {
    var r = e.getBoundingClientRect();
    return {name: e.parentElement.getAttribute('data-figure'),
            x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height};
  })}));
</script>"""


@dataclass
class Rendered:
    screenshot: Path
    figures: dict[str, dict[str, float]]
    missing: list[str]
    console: list[str]
    requests: list[str]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail(
            "chromium is not installed: the report tests need a real browser "
            "(apt-get install --no-install-recommends chromium; scripts/setup.sh --test does it)"
        )
    return exe


def run_chromium(args: list[str], folder: Path, name: str) -> subprocess.CompletedProcess[str]:
    base = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu",
        "--force-device-scale-factor=1", "--hide-scrollbars", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={folder / f'profile-{name}'}",
    ]  # fmt: skip
    done = subprocess.run(base + args, capture_output=True, text=True, timeout=120)
    return done


def static_external_references(html: str) -> list[str]:
    return [m.group(0) for pattern in EXTERNAL for m in re.finditer(pattern, html, re.I)]


def open_report(html_path: Path, folder: Path) -> Rendered:
    html = html_path.read_text(encoding="utf-8")
    external = static_external_references(html)
    assert not external, f"the report references outside resources: {external[:5]}"
    folder.mkdir(parents=True, exist_ok=True)

    probe = folder / "probe.html"
    probe.write_text(html.replace("</body>", BOXES + "</body>"), encoding="utf-8")
    dumped = run_chromium(
        [f"--window-size={WIDTH},1000", "--dump-dom", probe.resolve().as_uri()], folder, "probe"
    )
    found = re.search(r'data-boxes="([^"]*)"', dumped.stdout)
    assert found, f"chromium printed no layout: {dumped.stderr[-2000:]}"
    layout = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    height = int(layout["height"])
    assert height <= MAX_HEIGHT, f"the page is {height} px tall, over {MAX_HEIGHT}"

    shot, netlog = folder / "report.png", folder / "netlog.json"
    done = run_chromium(
        [
            f"--window-size={WIDTH},{height}", f"--screenshot={shot}",
            f"--log-net-log={netlog}", "--enable-logging=stderr", "--v=0",
            html_path.resolve().as_uri(),
        ],
        folder, "shot",
    )  # fmt: skip
    assert shot.exists(), f"chromium wrote no screenshot: {done.stderr[-2000:]}"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    missing = re.findall(r'data-missing="([^"]*)"', html)
    figures = {f["name"]: f for f in layout["figures"]}
    return Rendered(shot, figures, missing, console, page_requests(netlog))


def page_requests(netlog: Path) -> list[str]:
    """URLs the page asked for (the browser's own background requests have no file origin)."""
    log = json.loads(netlog.read_text(encoding="utf-8"))
    types = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if types.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        from_page = params.get("initiator") == "null" or "file://" in str(
            params.get("network_isolation_key", "")
        )
        if from_page:
            urls.append(params["url"])
    return urls


def blank_figures(rendered: Rendered) -> list[str]:
    """Figures whose plot box in the screenshot is (nearly) all white, or has no size."""
    import numpy as np
    from PIL import Image

    img = Image.open(rendered.screenshot).convert("RGB")
    blank = []
    for name, box in rendered.figures.items():
        x0, y0 = int(box["x"]), int(box["y"])
        x1, y1 = int(box["x"] + box["w"]), int(box["y"] + box["h"])
        if box["w"] < 50 or box["h"] < 50 or x1 > img.width or y1 > img.height:
            blank.append(f"{name} (box {box} outside a {img.width}x{img.height} shot)")
            continue
        pixels = np.asarray(img.crop((x0, y0, x1, y1))).reshape(-1, 3)
        inked = int((pixels.min(axis=1) < 225).sum())
        colours = len(np.unique(pixels, axis=0))
        if inked < 0.02 * len(pixels) or colours < 4:
            blank.append(f"{name} ({inked} of {len(pixels)} pixels inked, {colours} colours)")
    return blank


def check_report(html_path: Path, folder: Path, expected: set[str]) -> Rendered:
    """Open the report and assert: no outside reference or request, no console message, every
    expected figure drawn (not missing) and non-blank in the screenshot."""
    r = open_report(html_path, folder)
    assert not r.console, f"console messages: {r.console[:5]}"
    assert not r.requests, f"network requests from the page: {r.requests[:5]}"
    absent = expected - set(r.figures)
    assert not absent, f"figures missing: {sorted(absent)} (not drawn: {r.missing})"
    assert not (blank := blank_figures(r)), f"blank figures: {blank}"
    return r


# --- a small corpus for report tests -------------------------------------------------------------

ANIMALS = ["cat", "dog", "horse", "cow", "wolf", "otter", "heron", "salmon", "bee", "tiger"]
CODE = ["compiler", "kernel", "pointer", "buffer", "server", "package", "thread", "socket"]
VERBS = ["runs", "eats", "sleeps", "builds", "returns", "hunts", "reads", "writes"]


def _texts(words: list[str], n: int, seed: int, prefix: str) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(2, 12))
        out.append(prefix + " ".join(f"{rng.choice(words)} {rng.choice(VERBS)}" for _ in range(k)))
    return out


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_small_corpus(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two pool sources of 150 texts each and a 40-text target whose texts hold HTML markup."""
    animals = [{"text": t, "label": "animal"} for t in _texts(ANIMALS, 150, 0, "the ")]
    code = [{"text": t, "label": "code"} for t in _texts(CODE, 150, 1, "a ")]
    target = [{"text": "<script>alert(1)</script> " + t} for t in _texts(ANIMALS[:5], 40, 2, "")]
    return (
        _jsonl(tmp_path / "animals.jsonl", animals),
        _jsonl(tmp_path / "code.jsonl", code),
        _jsonl(tmp_path / "target.jsonl", target),
    )
