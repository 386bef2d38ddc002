"""Command-line options shared by several commands, and the helpers that read them back.

Every ``cli/*_cmd.py`` and ``cli/main.py`` import from here; nothing here imports a command, so
the commands and the entry point do not import each other.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tunesift.errors import TunesiftError


def parse_param(text: str, flag: str = "--param") -> tuple[str, Any]:
    """``NAME=VALUE`` with VALUE read as JSON when it parses (numbers, true/false), else a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise TunesiftError(f"{flag} expects NAME=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.strip().replace("-", "_"), value


def parse_method_params(texts: list[str], command: str) -> dict[str, dict[str, Any]]:
    """Repeated ``--param METHOD.NAME=VALUE`` (``compare``, ``bench``) as method -> {name: value}.

    VALUE is read as by :func:`parse_param`; METHOD is spelled as the CLI names methods
    (``color-filter``, also accepted as ``color_filter``), NAME as the Python parameter.
    """
    params: dict[str, dict[str, Any]] = {}
    for text in texts:
        key, value = parse_param(text)
        method, dot, name = key.partition(".")
        if not dot or not name:
            raise TunesiftError(f"{command}'s --param is METHOD.NAME=VALUE, got {text!r}")
        params.setdefault(method.replace("_", "-"), {})[name] = value
    return params


def add_input_options(p: argparse.ArgumentParser) -> None:
    """Pool/target files and how to read them: shared by ``select`` and ``compare``."""
    src = p.add_argument_group("inputs")
    src.add_argument(
        "--pool", nargs="+", default=[], metavar="PATH", help="pool files or HF dataset dirs"
    )
    src.add_argument("--target", nargs="+", default=[], metavar="PATH", help="target sample files")
    src.add_argument(
        "--pool-features", metavar="X.npy", help="precomputed pool features (rows = records)"
    )
    src.add_argument("--target-features", metavar="Y.npy", help="precomputed target features")
    src.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    src.add_argument("--id-field", help="field holding a record id (default: file:line)")
    src.add_argument(
        "--source-field",
        help="field naming the record's source (default: the 'source' field if present, else the file name)",
    )
    src.add_argument(
        "--text-template", help='build the text from fields, e.g. "{prompt}\\n{response}"'
    )
    src.add_argument(
        "--on-bad",
        choices=["error", "skip"],
        default="error",
        help="bad records: stop, or skip and count them",
    )


def add_budget_options(p: argparse.ArgumentParser) -> None:
    b = p.add_argument_group("budget (one of --budget, --budget-tokens)")
    one = b.add_mutually_exclusive_group(required=True)
    one.add_argument("--budget", type=int, metavar="K", help="number of documents to select")
    one.add_argument(
        "--budget-tokens",
        type=int,
        metavar="T",
        help="select up to T tokens (whitespace-separated words) instead of K documents",
    )
    b.add_argument(
        "--max-per-source", type=int, metavar="N", help="at most N documents from any one source"
    )


def add_engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scale-out")
    g.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="where shards are embedded and scored: here (default) or as Ray tasks; the "
        "selection is the same",
    )
    g.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster to join (e.g. auto, ray://head:10001; default: $RAY_ADDRESS, else a "
        "new local cluster)",
    )
    g.add_argument(
        "--ray-gpus-per-task",
        type=float,
        default=0.0,
        metavar="G",
        help="GPUs each Ray task asks for (default 0: tasks run on CPUs)",
    )


def engine_from_args(args: argparse.Namespace) -> Any:
    from tunesift.engine import get_engine

    if args.engine == "local":
        if args.ray_address or args.ray_gpus_per_task:
            raise TunesiftError("--ray-address and --ray-gpus-per-task need --engine ray")
        return get_engine("local")
    return get_engine("ray", address=args.ray_address, gpus_per_task=args.ray_gpus_per_task)


def method_list() -> str:
    from tunesift.methods import NAMES  # the names only: the methods load when one runs

    return ", ".join(sorted(NAMES))


def add_overwrite_option(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--overwrite``: replace existing outputs that tunesift did not write (see outputs.py)."""
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing output files even when tunesift did not write them (an output "
        "that is also an input is always refused)",
    )


def guard_outputs(
    args: argparse.Namespace,
    files: list[tuple[str, Any]],
    inputs: list[tuple[str, Any]],
    folders: list[tuple[str, Any]] | None = None,
) -> None:
    """Refuse, before any work, outputs that are inputs or files tunesift did not write."""
    from tunesift.outputs import check_outputs

    check_outputs(
        files=files,
        folders=folders or [],
        inputs=inputs,
        overwrite=bool(getattr(args, "overwrite", False)),
        command=f"tunesift {args.command}",
    )


def input_paths(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """``(flag, path)`` of every input file of ``add_input_options``."""
    return [
        *(("--pool", p) for p in args.pool),
        *(("--target", p) for p in args.target),
        ("--pool-features", args.pool_features),
        ("--target-features", args.target_features),
    ]


def add_report_option(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--report PATH.html``: also write the run's self-contained HTML report."""
    p.add_argument(
        "--report",
        metavar="PATH.html",
        help="also write a self-contained HTML report of the run (opens offline; "
        "see docs/report.md)",
    )


def check_report_path(args: argparse.Namespace) -> None:
    """``--report`` must name an .html file (checked before any work)."""
    report = getattr(args, "report", None)
    if report is not None and not str(report).lower().endswith((".html", ".htm")):
        raise TunesiftError(f"--report must end with .html, got {report}")
