"""Behaviour parity: ``tunesift select`` for every method, byte for byte, before and after a change.

    # once: the README's default data, and one feature cache that every run reuses
    tunesift corpora build --out /tmp/parity/data --max-per-source 1000
    # the reference, from a git worktree at the commit to compare against:
    git worktree add /tmp/parity-base <commit>
    python benchmarks/select_parity.py --src /tmp/parity-base/src --data /tmp/parity/data \\
        --cache-dir /tmp/parity/cache --work /tmp/parity/before --json /tmp/parity/before.json
    # the tree under test, then the comparison (exit 1 on any difference):
    python benchmarks/select_parity.py --data /tmp/parity/data --cache-dir /tmp/parity/cache \\
        --work /tmp/parity/after --json /tmp/parity/after.json --against /tmp/parity/before.json

Each run is the command line, ``python -m tunesift select`` in a subprocess whose ``PYTHONPATH``
starts with ``--src``, so one script checks any tree. For every method (gotd, dsir, rds, kmq, d4,
ccs, zipfit, random, random-balanced) and every budget setting in ``SETTINGS`` it writes the
selected records (JSONL), every pool item's score (JSONL) and the JSON sidecar, and records the
sha256 of each. The sidecar is hashed after removing what legitimately differs between two runs
of the same selection (``VOLATILE``: timings, versions, the command line with its output paths);
its normalized text is kept in the JSON too, so a difference can be read, not only detected.

MiniLM features come from ``--cache-dir``; the first run embeds the 8,800 texts (minutes on a
shared 2-core CPU), every later run reads them. If a tree's cache format differs, that tree
embeds again: slower, not a different answer (the stored features are float16 either way).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("gotd", "dsir", "rds", "kmq", "d4", "ccs", "zipfit", "random", "random-balanced")
#: budget settings: the README's document budget, and a token budget with a per-source cap, which
#: exercises the other budget path of every method
SETTINGS: dict[str, list[str]] = {
    "k500": ["--budget", "500"],
    "t20000-cap60": ["--budget-tokens", "20000", "--max-per-source", "60"],
}
#: sidecar keys whose values differ between two runs of the same selection
VOLATILE = frozenset({"versions", "tunesift_version", "timings_s", "seconds", "command"})


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def strip_volatile(value: Any) -> Any:
    """The sidecar without timings, versions and the command line, at any depth."""
    if isinstance(value, dict):
        return {k: strip_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [strip_volatile(v) for v in value]
    return value


def run_one(
    src: Path, data: Path, cache: Path, work: Path, method: str, setting: str
) -> dict[str, Any]:
    out_dir = work / f"{method}-{setting}"
    out_dir.mkdir(parents=True, exist_ok=True)
    selected, scores = out_dir / "selected.jsonl", out_dir / "scores.jsonl"
    meta = Path(str(selected) + ".meta.json")
    cmd = [
        sys.executable,
        "-m",
        "tunesift",
        "select",
        "--pool",
        str(data / "pool.jsonl"),
        "--target",
        str(data / "target.jsonl"),
        *SETTINGS[setting],
        "--method",
        method,
        "--seed",
        "0",
        "--device",
        "cpu",
        "--cache-dir",
        str(cache),
        "--out",
        str(selected),
        "--scores-out",
        str(scores),
        "-q",
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]))
    env["TQDM_DISABLE"] = "1"
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:], "seconds": seconds}
    sidecar = json.dumps(
        strip_volatile(json.loads(meta.read_text())), sort_keys=True, indent=1, ensure_ascii=False
    )
    return {
        "selected.jsonl": sha256(selected),
        "scores.jsonl": sha256(scores),
        "meta.json": hashlib.sha256(sidecar.encode("utf-8")).hexdigest(),
        "meta_normalized": sidecar,
        "seconds": round(seconds, 1),
    }


def tunesift_location(src: Path) -> str:
    """Which package the subprocesses import: the check is void if it is not ``src``'s."""
    env = dict(os.environ, PYTHONPATH=str(src))
    code = "import tunesift, sys; sys.stdout.write(tunesift.__file__)"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout


def git_head(src: Path) -> str | None:
    proc = subprocess.run(
        ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return proc.stdout.strip() or None


def compare(after: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """One line per run whose outputs differ (or that ran in only one of the two)."""
    lines = []
    for run in sorted(set(before["runs"]) | set(after["runs"])):
        a, b = after["runs"].get(run), before["runs"].get(run)
        if a is None or b is None:
            lines.append(f"{run}: only in {'before' if a is None else 'after'}")
            continue
        for key in ("error", "selected.jsonl", "scores.jsonl", "meta.json"):
            if a.get(key) != b.get(key):
                lines.append(f"{run}: {key} differs")
        if "error" not in a and "error" not in b and a["meta_normalized"] != b["meta_normalized"]:
            lines.extend(_sidecar_diff(run, b["meta_normalized"], a["meta_normalized"]))
    return lines


def _sidecar_diff(run: str, before: str, after: str) -> list[str]:
    import difflib

    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [f"  {run} sidecar {line}" for line in diff if not line.startswith(("---", "+++"))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--src", type=Path, default=ROOT / "src", help="the tree's src (default: ours)")
    ap.add_argument("--data", type=Path, required=True, help="folder with pool.jsonl, target.jsonl")
    ap.add_argument("--cache-dir", type=Path, required=True, help="feature cache, shared by runs")
    ap.add_argument("--work", type=Path, required=True, help="folder for the runs' outputs")
    ap.add_argument("--json", type=Path, required=True, help="where to write the hashes")
    ap.add_argument("--against", type=Path, help="a reference JSON to compare with")
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()

    src = args.src.resolve()
    where = tunesift_location(src)
    if not Path(where).resolve().is_relative_to(src):
        print(
            f"PYTHONPATH={src} imports tunesift from {where}, not from that tree", file=sys.stderr
        )
        return 2
    result: dict[str, Any] = {
        "src": str(src),
        "commit": git_head(src),
        "data": {name: sha256(args.data / name) for name in ("pool.jsonl", "target.jsonl")},
        "settings": SETTINGS,
        "runs": {},
    }
    for method in args.methods.split(","):
        for setting in SETTINGS:
            run = f"{method}/{setting}"
            result["runs"][run] = r = run_one(
                src, args.data, args.cache_dir, args.work, method, setting
            )
            status = r.get("error") or r["selected.jsonl"][:12]
            print(f"{run:28} {r['seconds']:7.1f} s  {status}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_name(args.json.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, args.json)
    print(f"wrote {args.json}")
    if args.against is None:
        return 0
    before = json.loads(args.against.read_text())
    if before["data"] != result["data"]:
        print("the reference was made on other data files", file=sys.stderr)
        return 2
    diffs = compare(result, before)
    n = len(result["runs"])
    if not diffs:
        print(f"parity: all {n} runs byte-identical to {args.against} ({before.get('commit')})")
        return 0
    print("\n".join(diffs))
    print(f"parity: FAILED against {args.against} ({before.get('commit')})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
