"""``tunesift bench``: labeled targets, the method x budget x seed grid, paired intervals.

Protocol (docs/evaluation.md, "tunesift bench"):

- **Task.** For each target (a corpus whose records carry natural labels: fortune categories,
  GCIDE domain tags, Debian sections, FOLDOC categories; or a user's labeled train and test
  files) the ``n_labels`` most frequent labels are kept. One fixed shuffle per label (it does not
  depend on the seed) cuts a **test split** (``test_per_label``), a **labeled train split**
  (``train_per_label``, what a downstream classifier is fine-tuned on) and an **in-domain
  reservoir** (unlabeled, for the oracle row). The test split is the same under every seed, so
  every run is scored on the same items and differences pair by item.
- **Target sample.** What the methods select towards is drawn *with the seed*: a seeded,
  stratified subset of ``target_per_label`` texts per label of the labeled train split (GOT-D's
  setting, the target task's training inputs; disjoint from the test split by construction and
  needing no extra data). A seed therefore changes the picks as well as the training, and the
  intervals cover the selection's variability, not only the training's.
- **Pool.** ``pool_per_source`` records of every source (seeded once), minus every preset task's
  train, test and reservoir texts (case and whitespace folded): no method can pick a labeled
  target text or an oracle text; ``check_leakage`` checks every selection again.
- **Rows.** ``no-pre-fine-tuning`` (the baseline), every method, and the reference rows
  ``random`` and ``oracle`` (``budget`` texts drawn, seeded, from the target's own reservoir: the
  "just be in-domain" ceiling, never in the pool the methods see), at every budget and seed, in
  every mode.
- **Method parameters.** Methods run with their defaults unless ``method_params`` (``--param
  METHOD.NAME=VALUE``) gives some, e.g. a small scoring model for LESS and CoLoR-Filter; what a
  method was given is kept in its rows (``params``), its run files and ``results.md``.
- **Resume.** Each finished run (task, method, budget, seed, mode) is written atomically to its
  own file under ``<out>/runs/``, named with a hash of the data and configuration it depends on
  (:func:`run_key`; a method's given parameters join the hash of that method's runs only);
  a rerun loads the finished runs and runs only the rest, so a killed bench continues where it
  stopped and a preset can run in parts (``--tasks``, ``--methods``, ``--budgets``, ``--seeds``).
- **Outputs.** ``results.json`` (every row with its per-item arrays, so intervals can be
  recomputed, and the paired comparisons), ``results.csv`` and ``results.md``: mean ± std, then
  each method minus ``random`` and minus the baseline with a 95% interval (``evaluate.stats``).

Modules: ``evaluate.presets`` (what a run covers), ``evaluate.targets`` (tasks, reservoir, pool),
``evaluate.results`` (rows, paired comparisons, tables); this one runs the grid and keeps the
per-run files a rerun resumes from. Their public names are importable from here too.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.api import RUN_SETTINGS, build_method, prepare, run_method
from tunesift.corpora.build import sources_read_once
from tunesift.errors import TunesiftError
from tunesift.evaluate.fast import FastConfig, evaluate_fast
from tunesift.evaluate.harness import BASELINE, causal_metrics, check_leakage, environment
from tunesift.evaluate.presets import (
    FOUR_TASKS,
    MODES,
    ORACLE,
    PRESETS,
    RANDOM,
    REFERENCES,
    Preset,
    TaskSpec,
    restrict,
)
from tunesift.evaluate.results import (
    COMPARED,
    LOWER_IS_BETTER,
    BenchRow,
    compare_rows,
    interval_table,
    markdown_table,
    results_csv,
    results_markdown,
)
from tunesift.evaluate.targets import BenchTask, UserTask, build_pool, build_task, build_user_task
from tunesift.evaluate.task import LabeledTask
from tunesift.methods import NAMES
from tunesift.methods.budget import Budget
from tunesift.outputs import write_text_atomic

__all__ = [
    "COMPARED", "FOUR_TASKS", "LOWER_IS_BETTER", "MODES", "ORACLE", "PRESETS", "RANDOM",
    "REFERENCES", "BenchRow", "BenchTask", "Preset", "TaskSpec", "UserTask", "build_pool",
    "build_task", "build_user_task", "check_method_params", "compare_rows", "interval_table",
    "markdown_table", "restrict", "run_bench", "run_key", "run_path",
]  # fmt: skip


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows``, or leave the file alone when it already holds exactly them: the feature
    cache keys a corpus by its files' paths, sizes and mtimes, so rewriting an unchanged pool on
    every resumed invocation would embed it again (minutes to tens of minutes on a CPU)."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if path.is_file() and path.read_bytes() == text.encode("utf-8"):
        return
    write_text_atomic(path, text)


def _data_hash(
    spec: Preset, mode: str, bt: BenchTask, pool_texts: Sequence[str], mode_cfg: dict[str, Any]
) -> str:
    """A key of everything a run's result depends on besides (method, budget, seed): the task's
    splits and reservoir, the pool, the featurizer, the target sample's size and the mode's
    configuration. A change to any of them starts the affected runs afresh."""
    h = hashlib.sha256()
    for part in (
        [bt.name], bt.task.train_texts, bt.task.train_labels, bt.task.test_texts,
        bt.task.test_labels, bt.reservoir, list(pool_texts),
        [spec.featurizer, str(spec.target_size()), mode, json.dumps(mode_cfg, sort_keys=True)],
    ):  # fmt: skip
        h.update(json.dumps(part, ensure_ascii=False).encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def run_key(data_key: str, params: dict[str, Any] | None = None) -> str:
    """The key in a run's file name: ``data_key`` (the hash of the data and the mode's
    configuration, the same for every method) when the method runs with its defaults, else a
    hash of it and the parameters given to the method.

    A run given no parameters keeps exactly the key runs had before methods could be given
    any, so the finished runs of a long bench are still found; giving a method a parameter
    starts that method's runs afresh and leaves the other methods' runs alone.
    """
    if not params:
        return data_key
    h = hashlib.sha256()
    for part in (data_key, json.dumps(params, sort_keys=True, ensure_ascii=False)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def check_method_params(
    methods: Sequence[str], method_params: dict[str, dict[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """``method_params`` checked before any work: each names a method the bench runs and
    parameters its class takes, none of them the run's own settings (seed, device, progress),
    with JSON values (they are hashed into the run key and written to the run files). Returns
    the methods given parameters (empty dicts dropped)."""
    given = {m: dict(p) for m, p in (method_params or {}).items() if p}
    for name, params in given.items():
        if name in REFERENCES:
            raise TunesiftError(
                f"method_params names {name!r}, a reference row with no parameters",
                param="method_params", func="run_bench",
            )  # fmt: skip
        if name not in NAMES:
            raise TunesiftError(
                f"unknown method {name!r} in method_params; choose from "
                f"{', '.join(sorted(NAMES))}", param="method_params", func="run_bench",
            )  # fmt: skip
        if name not in methods:
            raise TunesiftError(
                f"method_params names {name!r}, which this bench does not run (its methods: "
                f"{', '.join(methods)})", param="method_params", func="run_bench",
            )  # fmt: skip
        shared = sorted(set(params) & set(RUN_SETTINGS))
        if shared:
            raise TunesiftError(
                f"method_params sets {name}.{shared[0]}: {shared[0]} is the bench run's own, "
                "the same for every method (its seeds, device and progress lines)",
                param="method_params", func="run_bench",
            )  # fmt: skip
        try:
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError):
            raise TunesiftError(
                f"method_params of {name!r} must be JSON values (str, int, float, bool, None), "
                f"got {params!r}", param="method_params", func="run_bench",
            ) from None  # fmt: skip
        # the same check, and the same error, as compare's: the method's class takes them
        build_method(name, params, seed=0, device="cpu", progress=False)
    return given


def run_path(out: Path, task: str, method: str, budget: int | None, seed: int, mode: str,
             key: str) -> Path:  # fmt: skip
    k = "none" if budget is None else str(budget)
    return out / "runs" / task / f"{method}-k{k}-s{seed}-{mode}-{key}.json"


def _select(
    prep: Any, method: str, budget: int, seed: int, bt: BenchTask, pool_texts: list[str],
    device: str, params: dict[str, Any],
) -> list[str]:  # fmt: skip
    if method == ORACLE:
        return bt.oracle(budget, seed)
    sel = run_method(prep, method, Budget(docs=budget), seed=seed, device=device, **params)
    return [pool_texts[i] for i in sel.indices]


def run_bench(
    preset: str | Preset,
    out_dir: str | Path,
    *,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
    user_task: UserTask | None = None,
    method_params: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run a preset (or the preset's protocol on ``user_task``) end to end, resuming from the
    finished runs under ``out_dir/runs``; write ``results.csv``, ``results.json``, ``results.md``.

    Parameters
    ----------
    preset : str or Preset
        A name in ``PRESETS`` (``smoke``, ``cpu``, ``gpu``, ``causal-cpu``, ``causal``,
        ``causal-gpu``) or a :class:`Preset`, e.g. one cut down by :func:`restrict` to some of
        its tasks, methods, modes, budgets or seeds (how a preset runs in parts).
    out_dir : str or Path
        The output folder, created if missing: ``pool.jsonl``, each task's ``train.jsonl``,
        ``test.jsonl`` and seeded ``target-s<seed>.jsonl``, one file per finished run under
        ``runs/<task>/`` and the three results files. Rerunning into the same folder loads the
        finished runs whose data and configuration are unchanged and computes only the rest.
    cache_dir : str or Path, optional
        The feature cache handed to :func:`tunesift.api.prepare`; None: the default cache
        (``$XDG_CACHE_HOME/tunesift``).
    device : str, default "auto"
        ``"auto"``, ``"cpu"`` or ``"cuda"``: where selection features are computed and the
        encoder and causal modes train. It is not part of a run's key: a run finished on one
        device is reused on another.
    progress : callable, optional
        Called with one line of text per finished step (the pool, each run's metrics, the final
        counts); None: silent.
    user_task : UserTask, optional
        A user's labeled train and test files, pool files and optional unlabeled in-domain
        files. When given, it replaces the preset's tasks and pool; the preset supplies the
        rest (methods, budgets, seeds, modes, featurizer, target sample size, mode settings).
    method_params : dict, optional
        A method's hyper-parameters, by method name, as ``compare``'s: e.g. ``{"less":
        {"model": "tinylm", "epochs": 2}}``. Checked before any work (:func:`check_method_params`).
        They join the run key of that method's runs only (:func:`run_key`): the runs of a method
        given none keep their key, and a rerun with other parameters computes that method's runs
        afresh. Each row records its method's parameters (``params``).

    Returns
    -------
    dict
        What ``results.json`` holds: ``preset``, ``user_task``, ``environment``, ``seconds``,
        ``executed`` (the runs this call computed), ``reused`` (those loaded from an earlier
        call), ``pool``, ``tasks``, ``hyperparameters``, ``method_params`` (the methods given
        parameters), ``rows`` and ``comparisons``.

    Raises
    ------
    TunesiftError
        An unknown preset name, a task source without enough labeled records, an empty pool,
        an oracle row without an in-domain reservoir, or parameters for an unknown method, a
        method the bench does not run, or that its class does not take.
    """
    if isinstance(preset, str) and preset not in PRESETS:
        raise TunesiftError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    spec = PRESETS[preset] if isinstance(preset, str) else preset
    given = check_method_params(spec.methods, method_params)
    say = progress or (lambda m: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    env = environment()

    dropped = 0
    if user_task is not None:
        bt_user, pool, dropped = build_user_task(user_task)
        tasks = [bt_user]
        if dropped:
            say(f"pool: dropped {dropped} records that are the task's own texts")
    else:
        # build_task and build_pool are read from this module's namespace (tests replace them);
        # each source is parsed once for both
        with sources_read_once():
            all_tasks = {t.source: build_task(spec, t) for t in spec.tasks}
            pool = build_pool(spec, list(all_tasks.values()))
        keep = spec.only_tasks or tuple(all_tasks)
        tasks = [all_tasks[s] for s in keep]
    pool_path = out / "pool.jsonl"
    _write_jsonl(pool_path, pool)
    pool_texts = [r["text"] for r in pool]
    say(f"pool: {len(pool):,} records; tasks: {', '.join(t.name for t in tasks)}")

    fast_cfg = FastConfig(**spec.fast)
    enc_cfg = None
    if "encoder" in spec.modes:
        from tunesift.evaluate.encoder import EncoderConfig

        enc_cfg = EncoderConfig(**{**spec.encoder, "device": device})
    causal_cfg = None
    if "causal" in spec.modes:
        from tunesift.evaluate.causal import CausalConfig

        causal_cfg = CausalConfig(**{**spec.causal, "device": device})
        causal_cfg.validate()
    # the configuration each mode's results depend on (device excluded: it does not change them)
    mode_cfgs = {
        "fast": fast_cfg.to_dict(),
        "encoder": {k: v for k, v in (enc_cfg.to_dict() if enc_cfg else {}).items() if k != "device"},
        "causal": {k: v for k, v in (causal_cfg.to_dict() if causal_cfg else {}).items()
                   if k != "device"},
    }  # fmt: skip
    # embed only when some method reads features (DSIR, random and the oracle do not)
    needs = ["texts"]
    from tunesift.methods import METHODS  # here: loading the methods imports torch

    if any(m in METHODS and METHODS[m].inputs == "features" for m in spec.methods):
        needs.append("features")
    heads: dict[int, Any] = {}
    rows: list[BenchRow] = []
    executed = reused = 0
    for bt in tasks:
        task = bt.task
        tdir = out / task.name
        tdir.mkdir(exist_ok=True)
        _write_jsonl(tdir / "train.jsonl", [{"text": t, "label": y} for t, y in
                                             zip(task.train_texts, task.train_labels, strict=True)])  # fmt: skip
        _write_jsonl(tdir / "test.jsonl", [{"text": t, "label": y} for t, y in
                                            zip(task.test_texts, task.test_labels, strict=True)])  # fmt: skip
        keys = {m: _data_hash(spec, m, bt, pool_texts, mode_cfgs[m]) for m in spec.modes}
        (out / "runs" / task.name).mkdir(parents=True, exist_ok=True)
        causal_baseline: dict[str, Any] = {}
        for seed in spec.seeds:
            grid: list[tuple[str, int | None]] = [(BASELINE, None)]
            grid += [(m, k) for m in spec.methods for k in spec.budgets]
            prep = None
            for name, budget in grid:
                params = given.get(name, {})
                paths = {m: run_path(out, task.name, name, budget, seed, m,
                                     run_key(keys[m], params)) for m in spec.modes}  # fmt: skip
                todo = [m for m in spec.modes if not paths[m].exists()]
                for m in spec.modes:
                    if m not in todo:
                        kept = BenchRow(**json.loads(paths[m].read_text()))
                        rows.append(kept)
                        reused += 1
                        if name == BASELINE and m == "causal" and not causal_baseline:
                            # a resumed bench does not score the untouched model again
                            causal_baseline.update(metrics=kept.metrics, per_item=kept.per_item)
                if not todo:
                    continue
                texts: list[str] | None = None
                t_sel = 0.0
                if budget is not None:
                    t0 = time.perf_counter()
                    if prep is None and name != ORACLE:
                        target = tdir / f"target-s{seed}.jsonl"
                        _write_jsonl(target, [{"text": t} for t in
                                              bt.target_sample(spec.target_size(), seed)])  # fmt: skip
                        prep = prepare(
                            pool_path, target, needs=needs, featurizer=spec.featurizer,
                            cache_dir=cache_dir, device=device,
                        )  # fmt: skip
                    texts = _select(prep, name, budget, seed, bt, pool_texts, device, params)
                    check_leakage(f"{name}@{budget}", texts, task)
                    t_sel = time.perf_counter() - t0
                for mode in todo:
                    t0 = time.perf_counter()
                    per_item: dict[str, list[float]] = {}
                    if mode == "fast":
                        fast = evaluate_fast(texts, pool_texts, task.test_texts, fast_cfg)
                        metrics = {"perplexity": fast.perplexity}
                        per_item = {"test_nll": fast.item_nll,
                                    "test_tokens": [float(x) for x in fast.item_tokens]}  # fmt: skip
                    elif mode == "causal":
                        metrics, per_item = _causal_row(texts, task, causal_cfg, seed,
                                                        causal_baseline)  # fmt: skip
                        if per_item.get("pred"):
                            # gold label indices (into task.labels, as "pred"): macro-F1's
                            # interval is recomputed from them on every resample
                            per_item["gold"] = [float(task.labels.index(y))
                                                for y in task.test_labels]  # fmt: skip
                    else:
                        from tunesift.evaluate.encoder import evaluate_encoder

                        if seed not in heads:
                            heads[seed] = _warm_head(enc_cfg, pool_texts, seed, say)
                        e = evaluate_encoder(texts, task, enc_cfg, seed, head=heads[seed])
                        metrics = {"accuracy": e.accuracy, "macro_f1": e.macro_f1}
                        per_item = _per_item(e)
                    row = BenchRow(task.name, name, budget, seed, mode, metrics, t_sel,
                                   time.perf_counter() - t0, per_item, dict(params))  # fmt: skip
                    write_text_atomic(paths[mode], _run_record(row))
                    rows.append(row)
                    executed += 1
                    say(f"{task.name} {name} k={budget} seed={seed} {mode}: "
                        + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))  # fmt: skip
    say(f"{executed} runs computed, {reused} loaded from {out / 'runs'}")
    comparisons = compare_rows(rows, n_boot=spec.n_boot, against=spec.against)
    env["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    result = {
        "preset": asdict(spec),
        "user_task": asdict(user_task) if user_task else None,
        "environment": env,
        "seconds": round(time.perf_counter() - t_start, 1),
        "executed": executed,
        "reused": reused,
        "pool": {
            "records": len(pool),
            "by_source": dict(Counter(r["source"] for r in pool)),
            "dropped_task_texts": dropped,
        },
        "tasks": {
            bt.name: {
                "labels": bt.task.labels,
                "train": len(bt.task.train_texts),
                "test": len(bt.task.test_texts),
                "reservoir": len(bt.reservoir),
                "target_per_label": spec.target_size(),
            }
            for bt in tasks
        },  # fmt: skip
        "hyperparameters": {
            "fast": fast_cfg.to_dict(),
            "encoder": enc_cfg.to_dict() if enc_cfg else None,
            "causal": causal_cfg.to_dict() if causal_cfg else None,
        },  # fmt: skip
        "method_params": given,
        "rows": [asdict(r) for r in rows],
        "comparisons": comparisons,
    }
    write_text_atomic(out / "results.json", json.dumps(result, indent=1) + "\n")
    write_text_atomic(out / "results.csv", results_csv(rows))
    write_text_atomic(out / "results.md", results_markdown(rows, comparisons))
    return result


def _run_record(row: BenchRow) -> str:
    """A run file's text: the row, without ``params`` when the method ran with its defaults, so
    that such a file is what it was before methods could be given parameters (and loads in an
    older tunesift resuming the same folder)."""
    record = asdict(row)
    if not record["params"]:
        del record["params"]
    return json.dumps(record) + "\n"


def _warm_head(cfg: Any, pool_texts: list[str], seed: int, say: Callable[[str], None]) -> Any:
    """The seed's warmed masked-LM head, on a seeded pool sample: every method starts from it."""
    from tunesift.evaluate.encoder import warm_head

    n = min(len(pool_texts), cfg.mlm_head_steps * cfg.mlm_batch_size)
    rng = np.random.default_rng([seed, 0x4EAD])
    sample = [pool_texts[i] for i in sorted(rng.choice(len(pool_texts), n, replace=False))]
    t0 = time.perf_counter()
    head = warm_head(sample, cfg, seed)
    say(f"masked-LM head for seed {seed}: warmed on {n} pool texts in "
        f"{time.perf_counter() - t0:.1f}s")  # fmt: skip
    return head


def _per_item(result: Any) -> dict[str, list[float]]:
    """The per-test-item arrays of an evaluation result (``per_item`` attribute or entry)."""
    items = getattr(result, "per_item", None)
    if items is None and hasattr(result, "to_dict"):
        items = result.to_dict().get("per_item")
    if items is None:
        items = (getattr(result, "extra", None) or {}).get("per_item")
    return {k: [float(x) for x in v] for k, v in (items or {}).items()}


def _causal_row(
    texts: list[str] | None,
    task: LabeledTask,
    cfg: Any,
    seed: int,
    baseline: dict[str, Any],
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """One causal evaluation. The untouched model's scores do not depend on the seed: its
    perplexity needs no training, and the downstream probe is deterministic (no seed; see
    ``tunesift.evaluate.downstream``), so the baseline is scored once per target and its row
    repeated for every seed."""
    from tunesift.evaluate.causal import evaluate_causal

    if texts is None and baseline:
        return dict(baseline["metrics"]), dict(baseline["per_item"])
    result = evaluate_causal(texts, task, cfg, seed)
    metrics = causal_metrics(result)
    per_item = _per_item(result)
    if texts is None:
        baseline.update(metrics=metrics, per_item=per_item)
    return metrics, per_item
