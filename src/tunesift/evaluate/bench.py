"""``tunesift bench``: labeled targets from the real corpora, the method x budget x seed grid.

For each target task (a corpus whose records carry natural labels: fortune categories, GCIDE
domain tags, Debian sections, FOLDOC categories), the ``n_labels`` most frequent labels are
kept; a seeded, stratified sample of each label gives the task's small labeled train split and
its test split. One pool is drawn from every source (``pool_per_source`` each, seeded), and every
task's train and test texts are removed from it (case and whitespace folded), so no labeled
target text can be selected; ``evaluate`` checks it again. The train split's texts are the
target sample the methods select towards (GOT-D's setting: the target task's training inputs).

Then every method selects at every budget with every seed (deterministic methods give the same
selection for every seed; the seed still varies the training), each selection is evaluated in
each mode, beside the no-pre-fine-tuning baseline, and the rows are written as CSV and JSON, with
a markdown table of mean ± std over seeds.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.api import prepare, run_method
from tunesift.corpora.build import get_source
from tunesift.errors import TunesiftError
from tunesift.evaluate.fast import FastConfig, evaluate_fast
from tunesift.evaluate.harness import BASELINE, causal_metrics, check_leakage, environment
from tunesift.evaluate.task import LabeledTask
from tunesift.methods import METHODS
from tunesift.methods.budget import Budget


@dataclass(frozen=True)
class TaskSpec:
    """A labeled target: ``source`` records with its ``n_labels`` most frequent labels."""

    source: str
    n_labels: int = 4


@dataclass(frozen=True)
class Preset:
    name: str
    tasks: tuple[TaskSpec, ...]
    methods: tuple[str, ...]
    budgets: tuple[int, ...]
    seeds: tuple[int, ...]
    modes: tuple[str, ...]
    pool_per_source: int
    train_per_label: int
    test_per_label: int
    featurizer: str = "minilm"
    min_chars: int = 20
    encoder: dict[str, Any] = field(default_factory=dict)
    fast: dict[str, Any] = field(default_factory=dict)
    causal: dict[str, Any] = field(default_factory=dict)


FOUR_TASKS = (
    TaskSpec("fortunes"),
    TaskSpec("gcide"),
    TaskSpec("debian"),
    TaskSpec("foldoc"),
)
PRESETS: dict[str, Preset] = {
    # the protocol in miniature, for tests: one task, fast mode only
    "smoke": Preset(
        "smoke", (TaskSpec("fortunes", 3),), ("dsir", "random"), (50,), (0,), ("fast",),
        pool_per_source=150, train_per_label=10, test_per_label=20, featurizer="static",
    ),
    # issue 5's CPU protocol: <= 90 minutes on a 2-core CPU
    "cpu": Preset(
        "cpu", FOUR_TASKS, ("gotd", "dsir", "rds", "random"), (100, 400), (0, 1, 2),
        ("fast", "encoder"), pool_per_source=2000, train_per_label=16, test_per_label=100,
        encoder={"max_length": 64, "mlm_epochs": 1, "clf_epochs": 3},
    ),
    # the same protocol at a larger scale, for a GPU machine
    "gpu": Preset(
        "gpu", FOUR_TASKS, ("gotd", "dsir", "rds", "random", "kmq", "d4", "random-balanced"),
        (1000, 5000), (0, 1, 2), ("fast", "encoder"), pool_per_source=20000,
        train_per_label=32, test_per_label=250, encoder={"max_length": 128, "mlm_epochs": 2},
    ),
    # causal mode in miniature, sized for a 2-core CPU (docs/benchmarks.md): one target, one
    # budget, LoRA on SmolLM2-135M at 64 tokens, 100 test texts scored per run; two seeds, as
    # three did not fit in 30 minutes on a shared 2-core CPU (~3 min per LoRA run there)
    "causal-cpu": Preset(
        "causal-cpu", (TaskSpec("fortunes"),), ("gotd", "dsir", "rds", "random"), (100,),
        (0, 1), ("causal",), pool_per_source=1000, train_per_label=16, test_per_label=25,
        causal={"max_length": 64, "epochs": 1, "batch_size": 8, "lr": 1e-3},
    ),
}  # fmt: skip

MODES = ("fast", "encoder", "causal")


def restrict(
    spec: Preset,
    *,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
) -> Preset:
    """The preset with only some of its tasks, or other methods or modes (checked here)."""
    changes: dict[str, Any] = {}
    if tasks:
        known = {t.source: t for t in spec.tasks}
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise TunesiftError(
                f"preset {spec.name!r} has no task {unknown[0]!r}; it has {', '.join(known)}"
            )
        changes["tasks"] = tuple(known[t] for t in tasks)
    if methods:
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise TunesiftError(f"unknown method {bad[0]!r}; choose from {', '.join(METHODS)}")
        changes["methods"] = tuple(methods)
    if modes:
        bad = [m for m in modes if m not in MODES]
        if bad:
            raise TunesiftError(f"unknown mode {bad[0]!r}; choose from {', '.join(MODES)}")
        changes["modes"] = tuple(modes)
    return dataclasses.replace(spec, **changes) if changes else spec


def _fold(text: str) -> str:
    return " ".join(text.lower().split())


def build_task(spec: Preset, task: TaskSpec, seed: int = 0) -> LabeledTask:
    """A stratified, seeded train/test split of the source's most frequent labels."""
    src = get_source(task.source)
    src.require()
    by_label: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for rec in src.read():
        text, label = rec["text"], rec.get("label", "")
        if not label or len(text) < spec.min_chars or _fold(text) in seen:
            continue
        seen.add(_fold(text))
        by_label[label].append(text)
    need = spec.train_per_label + spec.test_per_label
    labels = [
        lab
        for lab, n in Counter({k: len(v) for k, v in by_label.items()}).most_common()
        if n >= need
    ][: task.n_labels]
    if len(labels) < 2:
        raise TunesiftError(f"{task.source}: fewer than two labels with {need} records each")
    rng = random.Random(f"{seed}/{task.source}/task")
    tr_x, tr_y, te_x, te_y = [], [], [], []
    for lab in sorted(labels):
        texts = rng.sample(by_label[lab], need)
        tr_x += texts[: spec.train_per_label]
        tr_y += [lab] * spec.train_per_label
        te_x += texts[spec.train_per_label :]
        te_y += [lab] * spec.test_per_label
    return LabeledTask(f"{task.source}-{len(labels)}", tr_x, tr_y, te_x, te_y)


def build_pool(spec: Preset, tasks: Sequence[LabeledTask], seed: int = 0) -> list[dict[str, str]]:
    """``pool_per_source`` records of every source, none of them a task's train or test text."""
    from tunesift.corpora.build import DEFAULT_SOURCES, SOURCES

    banned = {_fold(t) for task in tasks for t in task.train_texts + task.test_texts}
    pool: list[dict[str, str]] = []
    seen: set[str] = set()
    for name in DEFAULT_SOURCES:
        src = SOURCES[name]
        if not src.available():
            continue
        recs = []
        for r in src.read():
            f = _fold(r["text"])
            if len(r["text"]) < spec.min_chars or f in banned or f in seen:
                continue
            seen.add(f)
            recs.append({"text": r["text"], "source": name, "label": r.get("label", "")})
        rng = random.Random(f"{seed}/{name}/pool")
        pool += rng.sample(recs, min(len(recs), spec.pool_per_source))
    random.Random(f"{seed}/pool").shuffle(pool)
    return pool


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


@dataclass
class BenchRow:
    task: str
    method: str
    budget: int | None
    seed: int
    mode: str
    metrics: dict[str, float]
    select_seconds: float
    eval_seconds: float


def _warm_heads(
    spec: Preset, cfg: Any, pool_texts: list[str], say: Callable[[str], None]
) -> dict[int, Any]:
    """One warmed masked-LM head per seed, on a seeded pool sample: every method starts from it."""
    from tunesift.evaluate.encoder import warm_head

    n = min(len(pool_texts), cfg.mlm_head_steps * cfg.mlm_batch_size)
    heads = {}
    for seed in spec.seeds:
        rng = np.random.default_rng([seed, 0x4EAD])
        sample = [pool_texts[i] for i in sorted(rng.choice(len(pool_texts), n, replace=False))]
        t0 = time.perf_counter()
        heads[seed] = warm_head(sample, cfg, seed)
        say(f"masked-LM head for seed {seed}: warmed on {n} pool texts in "
            f"{time.perf_counter() - t0:.1f}s")  # fmt: skip
    return heads


def run_bench(
    preset: str | Preset,
    out_dir: str | Path,
    *,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run a preset end to end; write ``results.csv``, ``results.json`` and ``results.md``."""
    spec = PRESETS[preset] if isinstance(preset, str) else preset
    if isinstance(preset, str) and preset not in PRESETS:
        raise TunesiftError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    say = progress or (lambda m: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    env = environment()

    tasks = [build_task(spec, t) for t in spec.tasks]
    pool = build_pool(spec, tasks)
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
    # embed only when some method reads features (DSIR and random do not)
    needs = ["texts"]
    if any(METHODS[m].inputs == "features" for m in spec.methods):
        needs.append("features")
    heads = _warm_heads(spec, enc_cfg, pool_texts, say) if enc_cfg else {}
    rows: list[BenchRow] = []
    for task in tasks:
        tdir = out / task.name
        tdir.mkdir(exist_ok=True)
        _write_jsonl(
            tdir / "train.jsonl",
            [
                {"text": t, "label": y}
                for t, y in zip(task.train_texts, task.train_labels, strict=True)
            ],
        )
        _write_jsonl(tdir / "test.jsonl", [{"text": t, "label": y} for t, y in
                                            zip(task.test_texts, task.test_labels, strict=True)])  # fmt: skip
        prep = prepare(
            pool_path, tdir / "train.jsonl", needs=needs,
            featurizer=spec.featurizer, cache_dir=cache_dir, device=device,
        )  # fmt: skip
        runs: list[tuple[str, int | None, int, list[str] | None, float]] = []
        causal_baseline: dict[str, float] = {}  # the untouched model scores the same every seed
        for seed in spec.seeds:
            runs.append((BASELINE, None, seed, None, 0.0))
        for method in spec.methods:
            for size in spec.budgets:
                for seed in spec.seeds:
                    t0 = time.perf_counter()
                    sel = run_method(prep, method, Budget(docs=size), seed=seed, device=device)
                    picked = [pool_texts[i] for i in sel.indices]
                    check_leakage(f"{method}@{size}", picked, task)
                    runs.append((method, size, seed, picked, time.perf_counter() - t0))
        for name, budget, seed, texts, t_sel in runs:
            for mode in spec.modes:
                t0 = time.perf_counter()
                if mode == "fast":
                    fast = evaluate_fast(texts, pool_texts, task.test_texts, fast_cfg)
                    metrics = {"perplexity": fast.perplexity}
                elif mode == "causal":
                    metrics = _causal_row(texts, task, causal_cfg, seed, causal_baseline)
                else:
                    from tunesift.evaluate.encoder import evaluate_encoder

                    e = evaluate_encoder(texts, task, enc_cfg, seed, head=heads.get(seed))
                    metrics = {"accuracy": e.accuracy, "macro_f1": e.macro_f1}
                row = BenchRow(task.name, name, budget, seed, mode, metrics, t_sel,
                               time.perf_counter() - t0)  # fmt: skip
                rows.append(row)
                say(f"{task.name} {name} k={budget} seed={seed} {mode}: "
                    + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))  # fmt: skip
    env["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    result = {
        "preset": asdict(spec),
        "environment": env,
        "seconds": round(time.perf_counter() - t_start, 1),
        "pool": {"records": len(pool), "by_source": dict(Counter(r["source"] for r in pool))},
        "tasks": {
            t.name: {"labels": t.labels, "train": len(t.train_texts), "test": len(t.test_texts)}
            for t in tasks
        },  # fmt: skip
        "hyperparameters": {
            "fast": fast_cfg.to_dict(),
            "encoder": enc_cfg.to_dict() if enc_cfg else None,
            "causal": causal_cfg.to_dict() if causal_cfg else None,
        },  # fmt: skip
        "rows": [asdict(r) for r in rows],
    }
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "method", "budget", "seed", "mode", "metric", "value",
                    "select_seconds", "eval_seconds"])  # fmt: skip
        for r in rows:
            for k, v in r.metrics.items():
                w.writerow([r.task, r.method, r.budget, r.seed, r.mode, k, v,
                            round(r.select_seconds, 3), round(r.eval_seconds, 3)])  # fmt: skip
    (out / "results.md").write_text(markdown_table(rows) + "\n\n" + paired_table(rows) + "\n")
    return result


def _causal_row(
    texts: list[str] | None,
    task: LabeledTask,
    cfg: Any,
    seed: int,
    baseline: dict[str, float],
) -> dict[str, float]:
    """One causal evaluation; the baseline is scored once per task (no training, no seed)."""
    from tunesift.evaluate.causal import evaluate_causal

    if texts is None and baseline:
        return dict(baseline)
    metrics = causal_metrics(evaluate_causal(texts, task, cfg, seed))
    if texts is None:
        baseline.update(metrics)
    return metrics


def markdown_table(rows: Sequence[BenchRow]) -> str:
    """One line per task x method x budget; a column per mode's metric, mean ± std over seeds."""
    groups: dict[tuple[str, str, int | None], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    columns: list[str] = []
    for r in rows:
        for k, v in r.metrics.items():
            col = f"{r.mode} {k}"
            if col not in columns:
                columns.append(col)
            groups[(r.task, r.method, r.budget)][col].append(v)
    lines = [
        "| task | method | budget | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for (task, method, budget), cols in groups.items():
        cells = []
        for c in columns:
            vals = cols.get(c, [])
            if not vals:
                cells.append("-")
                continue
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.fmean(vals):.4g} ± {sd:.2g}")
        lines.append(f"| {task} | {method} | {budget or '-'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


LOWER_IS_BETTER = {"perplexity"}


def paired_table(rows: Sequence[BenchRow]) -> str:
    """Each method minus the baseline of the same task and seed: mean ± std, and seeds won.

    The baseline and a method share a seed's fine-tuning noise (same classifier initialization
    and batch order), so the paired difference is the sharper reading when seeds disagree.
    """
    base = {(r.task, r.seed, r.mode, k): v for r in rows if r.method == BASELINE
            for k, v in r.metrics.items()}  # fmt: skip
    groups: dict[tuple[str, str, int | None], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    columns: list[str] = []
    for r in rows:
        if r.method == BASELINE:
            continue
        for k, v in r.metrics.items():
            b = base.get((r.task, r.seed, r.mode, k))
            if b is None:
                continue
            col = f"{r.mode} {k}"
            if col not in columns:
                columns.append(col)
            groups[(r.task, r.method, r.budget)][col].append(v - b)
    lines = [
        f"Paired with {BASELINE} (same task and seed): difference mean ± std, seeds better.",
        "",
        "| task | method | budget | " + " | ".join(f"Δ {c}" for c in columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for (task, method, budget), cols in groups.items():
        cells = []
        for c in columns:
            d = cols.get(c, [])
            if not d:
                cells.append("-")
                continue
            sd = statistics.stdev(d) if len(d) > 1 else 0.0
            lower = c.split(" ", 1)[1] in LOWER_IS_BETTER
            won = sum((x < 0) if lower else (x > 0) for x in d)
            m = statistics.fmean(d)
            digits = 3 if max(abs(m), sd) < 10 else 1
            cells.append(f"{m:+.{digits}f} ± {sd:.{digits}f} ({won}/{len(d)})")
        lines.append(f"| {task} | {method} | {budget or '-'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
