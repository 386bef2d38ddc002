"""``tunesift`` command line: ``select``, ``compare``, ``evaluate``, ``bench``, ``tasks``, ``corpora`` and ``report``. User errors end in one line, never a traceback."""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
import warnings
from pathlib import Path

from tunesift._version import __version__
from tunesift.cli.errors import render_error
from tunesift.cli.options import (
    add_budget_options,
    add_engine_options,
    add_input_options,
    add_overwrite_option,
    add_report_option,
    check_report_path,
    engine_from_args,
    guard_outputs,
    input_paths,
    method_list,
    parse_param,
)
from tunesift.errors import TunesiftError


def _add_select(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "select",
        help="select the k pool samples to pre-fine-tune on (GOT-D by default)",
        description="Select pool samples for pre-fine-tuning towards a target sample.",
    )
    add_input_options(p)
    add_budget_options(p)
    sel = p.add_argument_group("selection")
    sel.add_argument(
        "--method", default="gotd", help=f"selection method: {method_list()} (default: gotd)"
    )
    sel.add_argument(
        "--featurizer",
        default="minilm",
        help="minilm (default), static, ngrams, or a local sentence-transformers folder",
    )
    sel.add_argument(
        "--featurizer-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="featurizer parameter (repeatable), e.g. backend=onnx or backend=onnx-int8 for "
        "minilm (ONNX Runtime on the CPU; default backend=torch), max_seq_length=128",
    )
    sel.add_argument(
        "--epsilon", type=float, help="GOT-D entropic regularization (default 0.05, relative)"
    )
    sel.add_argument(
        "--epsilon-mode",
        choices=["relative", "absolute"],
        help="epsilon relative to the median cost (default) or absolute",
    )
    sel.add_argument(
        "--pca-dim",
        type=int,
        metavar="D",
        help="project features onto D principal components before selecting (default: off)",
    )
    sel.add_argument(
        "--ot-mode",
        choices=["auto", "exact", "sampled"],
        help="GOT-D: solve on the whole pool, or fit on a sample and extend by c-transform "
        "(default auto: exact while the pool x target cost fits in memory)",
    )
    sel.add_argument(
        "--fit-sample",
        type=int,
        metavar="N",
        help="GOT-D sampled mode: pool rows in the fit (default 20000)",
    )
    sel.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="method hyper-parameter (repeatable), e.g. tol=1e-5 or hash=sha256; the names are "
        "those of the Python API",
    )
    sel.add_argument("--seed", type=int, default=0)
    sel.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    out = p.add_argument_group("outputs")
    out.add_argument(
        "--out",
        default="selected.jsonl",
        help="selected records, .jsonl or .parquet (default: selected.jsonl)",
    )
    out.add_argument(
        "--scores-out", help="every pool item's index and score (.parquet, .csv, .jsonl)"
    )
    out.add_argument(
        "--group-by", help="also count the selection by this record field (e.g. label)"
    )
    out.add_argument(
        "--cache-dir", type=Path, help="feature cache (default: $XDG_CACHE_HOME/tunesift)"
    )
    add_report_option(out)
    add_overwrite_option(out)
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_engine_options(p)
    p.set_defaults(func=run_select)


def run_select(args: argparse.Namespace) -> int:
    from tunesift.api import select
    from tunesift.outputs import record_outputs
    from tunesift.report.summary import format_summary
    from tunesift.selection import check_output_format

    check_output_format(args.out, "records")
    if args.scores_out:
        check_output_format(args.scores_out, "scores")
    check_report_path(args)
    sidecar = Path(str(args.out) + ".meta.json")
    guard_outputs(
        args,
        [("--out", args.out), ("--scores-out", args.scores_out), ("--out's sidecar", sidecar),
         ("--report", args.report)],
        input_paths(args),
    )  # fmt: skip
    params = dict(parse_param(t) for t in args.param)
    # a method parameter that is also one of select's own settings (seed, device) would reach
    # select twice; its flag sets it for the run, and the method receives it from there
    shared = sorted(set(params) & set(inspect.signature(select).parameters))
    if shared:
        flag = "--" + shared[0].replace("_", "-")
        raise TunesiftError(
            f"--param {shared[0]}=...: {shared[0]} is a setting of the run, give it as {flag}"
        )
    if args.epsilon is not None:
        params["epsilon"] = args.epsilon
    for name in ("epsilon_mode", "ot_mode", "fit_sample"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    selection = select(
        args.pool or None,
        args.target or None,
        args.budget,
        budget_tokens=args.budget_tokens,
        max_per_source=args.max_per_source,
        method=args.method,
        featurizer=args.featurizer,
        featurizer_params=dict(parse_param(t, "--featurizer-param") for t in args.featurizer_param),
        pool_features=args.pool_features,
        target_features=args.target_features,
        text_field=args.text_field,
        id_field=args.id_field,
        source_field=args.source_field,
        text_template=args.text_template,
        on_bad=args.on_bad,
        cache_dir=args.cache_dir,
        device=args.device,
        seed=args.seed,
        pca_dim=args.pca_dim,
        show_progress=not args.quiet,
        engine=engine_from_args(args),
        **params,
    )
    outputs = [str(selection.write(args.out))]
    if args.scores_out:
        outputs.append(str(selection.write_scores(args.scores_out)))
    selection.info["command"] = "tunesift " + " ".join(map(str, args.argv))
    selection.info["outputs"] = {"records": str(args.out), "scores": args.scores_out}
    outputs.append(str(selection.write_metadata(sidecar)))
    record_outputs(outputs, command="tunesift select")
    if args.report:
        from tunesift.report.select_report import write_select_report

        # from the outputs just written, as `tunesift report` would; the scores are in hand
        write_select_report(args.report, sidecar, scores=selection.scores, seed=args.seed)
        record_outputs([args.report], command="tunesift select")
        outputs.append(str(args.report))
    print(format_summary(selection, group_by=args.group_by, outputs=outputs))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunesift",
        description="Pick the training data a pretrained language model should be tuned on.",
    )
    parser.add_argument("--version", action="version", version=f"tunesift {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_select(sub)
    from tunesift.cli import (
        bench_cmd,
        compare_cmd,
        corpora_cmd,
        evaluate_cmd,
        report_cmd,
        tasks_cmd,
    )

    compare_cmd.add_parser(sub)
    evaluate_cmd.add_parser(sub)
    bench_cmd.add_parser(sub)
    tasks_cmd.add_parser(sub)
    corpora_cmd.add_parser(sub)
    report_cmd.add_parser(sub)
    return parser


def _quiet_third_parties() -> None:
    # No hub here or on most clusters: never let a model load try the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("transformers", "sentence_transformers", "datasets", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # the command as given, for provenance (sys.argv is the caller's when main() is called)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _quiet_third_parties()
    try:
        return int(args.func(args) or 0)
    except TunesiftError as exc:
        print(f"tunesift: error: {render_error(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `tunesift ... | head`: the reader left; not an error of ours.
        sys.stderr.close()
        return 0
    except OSError as exc:
        # Disk full, permission denied, ...: the user's to fix; say which file.
        print(f"tunesift: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "tunesift: interrupted (finished feature shards are cached; rerun to resume)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
