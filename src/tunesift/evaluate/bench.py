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
- **Resume.** Each finished run (task, method, budget, seed, mode) is written atomically to its
  own file under ``<out>/runs/``, named with a hash of the data and configuration it depends on;
  a rerun loads the finished runs and runs only the rest, so a killed bench continues where it
  stopped and a preset can run in parts (``--tasks``, ``--methods``, ``--budgets``, ``--seeds``).
- **Outputs.** ``results.json`` (every row with its per-item arrays, so intervals can be
  recomputed, and the paired comparisons), ``results.csv`` and ``results.md``: mean ± std, then
  each method minus ``random`` and minus the baseline with a 95% interval (``evaluate.stats``).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
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
from tunesift.evaluate.stats import (
    Interval,
    macro_f1_difference,
    mean_difference,
    perplexity_difference,
    t_interval,
)
from tunesift.evaluate.task import LabeledTask
from tunesift.methods import METHODS
from tunesift.methods.budget import Budget
from tunesift.outputs import write_text_atomic

ORACLE = "oracle"
RANDOM = "random"
REFERENCES = (ORACLE,)  # rows that are not tunesift methods


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
    # the seeded target sample, per label, drawn from the labeled train split (None: half of it)
    target_per_label: int | None = None
    # unlabeled in-domain texts per label kept for the oracle row (and out of the pool); fixed
    # per preset, not derived from the methods or budgets run, so that running a preset in parts
    # (other --methods, --budgets) draws the same pool and reuses the finished runs
    oracle_per_label: int = 0
    # bootstrap replicates of the paired intervals
    n_boot: int = 2000
    # only these of ``tasks`` run (``restrict``); the pool still excludes every task's texts,
    # so a preset run in parts draws the same pool
    only_tasks: tuple[str, ...] = ()

    def target_size(self) -> int:
        return self.target_per_label or max(1, self.train_per_label // 2)


FOUR_TASKS = (
    TaskSpec("fortunes"),
    TaskSpec("gcide"),
    TaskSpec("debian"),
    TaskSpec("foldoc"),
)
PRESETS: dict[str, Preset] = {
    # the protocol in miniature, for tests: one task, fast mode only
    "smoke": Preset(
        "smoke", (TaskSpec("fortunes", 3),), ("dsir", "random", "oracle"), (50,), (0, 1),
        ("fast",), pool_per_source=150, train_per_label=10, test_per_label=20,
        featurizer="static", oracle_per_label=40, n_boot=200,
    ),
    # issue 5's CPU protocol: <= 90 minutes on a 2-core CPU
    "cpu": Preset(
        "cpu", FOUR_TASKS, ("gotd", "dsir", "rds", "random"), (100, 400), (0, 1, 2),
        ("fast", "encoder"), pool_per_source=2000, train_per_label=16, test_per_label=100,
        encoder={"max_length": 64, "mlm_epochs": 1, "clf_epochs": 3}, oracle_per_label=200,
    ),
    # the same protocol at a larger scale, for a GPU machine
    "gpu": Preset(
        "gpu", FOUR_TASKS, ("gotd", "dsir", "rds", "random", "kmq", "d4", "random-balanced"),
        (1000, 5000), (0, 1, 2), ("fast", "encoder"), pool_per_source=20000,
        train_per_label=32, test_per_label=250, encoder={"max_length": 128, "mlm_epochs": 2},
        oracle_per_label=2500,
    ),
    # causal mode in miniature, sized for a 2-core CPU (docs/benchmarks.md): one target, one
    # budget, LoRA on SmolLM2-135M at 64 tokens, 100 test texts scored per run; two seeds, as
    # three did not fit in 30 minutes on a shared 2-core CPU (~3 min per LoRA run there)
    "causal-cpu": Preset(
        "causal-cpu", (TaskSpec("fortunes"),), ("gotd", "dsir", "rds", "random"), (100,),
        (0, 1), ("causal",), pool_per_source=1000, train_per_label=16, test_per_label=25,
        causal={"max_length": 64, "epochs": 1, "batch_size": 8, "lr": 1e-3},
        oracle_per_label=50,
    ),
    # issue 14's causal protocol: four targets x two budgets x three seeds, the oracle and
    # random references, perplexity and downstream accuracy (64 labeled train and 100 test texts
    # per label). Sized for <= 150 min on 2 cores at 32 tokens, batch 8 (132 runs); no per-run
    # timing was measured when it was defined (docs/evaluation.md)
    "causal": Preset(
        "causal", FOUR_TASKS, ("gotd", "dsir", "rds", "random", "oracle"), (100, 400),
        (0, 1, 2), ("causal",), pool_per_source=2000, train_per_label=64, test_per_label=100,
        target_per_label=32, oracle_per_label=200,
        causal={"max_length": 32, "epochs": 1, "batch_size": 8, "lr": 1e-3},
    ),
    # the causal protocol for one <= 8-minute H100/H200 window: larger budgets and sequences
    # (never run: no GPU was lent when it was defined)
    "causal-gpu": Preset(
        "causal-gpu", FOUR_TASKS, ("gotd", "dsir", "rds", "random", "oracle"), (400, 1600),
        (0, 1, 2), ("causal",), pool_per_source=5000, train_per_label=64, test_per_label=100,
        target_per_label=32, oracle_per_label=800,
        causal={"max_length": 128, "epochs": 1, "batch_size": 32, "lr": 1e-3,
                "eval_batch_size": 64},
    ),
}  # fmt: skip

MODES = ("fast", "encoder", "causal")


def restrict(
    spec: Preset,
    *,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
    budgets: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
) -> Preset:
    """The preset with only some of its tasks, or other methods, modes, budgets or seeds."""
    changes: dict[str, Any] = {}
    if tasks:
        known = [t.source for t in spec.tasks]
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise TunesiftError(
                f"preset {spec.name!r} has no task {unknown[0]!r}; it has {', '.join(known)}"
            )
        changes["only_tasks"] = tuple(tasks)
    if methods:
        bad = [m for m in methods if m not in METHODS and m not in REFERENCES]
        if bad:
            choices = ", ".join([*METHODS, *REFERENCES])
            raise TunesiftError(f"unknown method {bad[0]!r}; choose from {choices}")
        changes["methods"] = tuple(methods)
    if modes:
        bad = [m for m in modes if m not in MODES]
        if bad:
            raise TunesiftError(f"unknown mode {bad[0]!r}; choose from {', '.join(MODES)}")
        changes["modes"] = tuple(modes)
    if budgets:
        if any(b < 1 for b in budgets):
            raise TunesiftError(f"budgets must be positive, got {list(budgets)}")
        changes["budgets"] = tuple(budgets)
    if seeds:
        changes["seeds"] = tuple(seeds)
    return dataclasses.replace(spec, **changes) if changes else spec


def _fold(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass
class BenchTask:
    """A target of the bench: the labeled task (fixed train and test splits) and the unlabeled
    in-domain reservoir the oracle draws from."""

    task: LabeledTask
    reservoir: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.task.name

    def target_sample(self, per_label: int, seed: int) -> list[str]:
        """The seeded target sample: ``per_label`` texts of each label of the train split."""
        by_label: dict[str, list[str]] = defaultdict(list)
        for text, label in zip(self.task.train_texts, self.task.train_labels, strict=True):
            by_label[label].append(text)
        rng = random.Random(f"{seed}/{self.name}/target")
        out: list[str] = []
        for label in sorted(by_label):
            texts = by_label[label]
            out += rng.sample(texts, min(per_label, len(texts)))
        return out

    def oracle(self, budget: int, seed: int) -> list[str]:
        """``budget`` reservoir texts drawn with the seed (all of them when it holds fewer)."""
        if not self.reservoir:
            raise TunesiftError(
                f"{self.name}: no in-domain reservoir for the oracle row (a preset's "
                "oracle_per_label, or UserTask.unlabeled)",
                param="UserTask.unlabeled",
            )
        rng = random.Random(f"{seed}/{self.name}/oracle/{budget}")
        return rng.sample(self.reservoir, min(budget, len(self.reservoir)))


def build_task(spec: Preset, task: TaskSpec) -> BenchTask:
    """Fixed, stratified test and train splits of the source's most frequent labels, and the
    in-domain reservoir (``oracle_per_label`` more texts per label, as many as there are)."""
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
    extra = spec.oracle_per_label
    # one shuffle per label, independent of the seed: the test split pairs across seeds
    rng = random.Random(f"0/{task.source}/task")
    tr_x, tr_y, te_x, te_y, reservoir = [], [], [], [], []
    for lab in sorted(labels):
        texts = rng.sample(by_label[lab], min(len(by_label[lab]), need + extra))
        te_x += texts[: spec.test_per_label]
        te_y += [lab] * spec.test_per_label
        tr_x += texts[spec.test_per_label : need]
        tr_y += [lab] * spec.train_per_label
        reservoir += texts[need:]
    labeled = LabeledTask(f"{task.source}-{len(labels)}", tr_x, tr_y, te_x, te_y)
    return BenchTask(labeled, reservoir)


def build_pool(spec: Preset, tasks: Sequence[BenchTask], seed: int = 0) -> list[dict[str, str]]:
    """``pool_per_source`` records of every source, none of them a task's train, test or
    reservoir text."""
    from tunesift.corpora.build import DEFAULT_SOURCES, SOURCES

    banned = {
        _fold(t) for bt in tasks for t in bt.task.train_texts + bt.task.test_texts + bt.reservoir
    }
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


@dataclass(frozen=True)
class UserTask:
    """A user's target for ``bench``: labeled train and test files (fields text and label),
    pool files, and optionally unlabeled in-domain files for the oracle row."""

    train: str
    test: str
    pool: tuple[str, ...]
    unlabeled: tuple[str, ...] = ()
    name: str | None = None
    text_field: str = "text"
    label_field: str = "label"


def build_user_task(user: UserTask) -> tuple[BenchTask, list[dict[str, str]], int]:
    """The user's task, their pool (minus any of the task's labeled or reservoir texts) and how
    many pool records were dropped for being one of them."""
    from tunesift.corpus.corpus import Corpus
    from tunesift.evaluate.harness import load_task, read_texts

    task = load_task(
        user.train, user.test, name=user.name, text_field=user.text_field,
        label_field=user.label_field,
    )  # fmt: skip
    held = {_fold(t) for t in task.train_texts + task.test_texts}
    reservoir = [t for t in read_texts(user.unlabeled, user.text_field) if _fold(t) not in held]
    banned = held | {_fold(t) for t in reservoir}
    pool: list[dict[str, str]] = []
    dropped = 0
    for batch in Corpus(list(user.pool), text_field=user.text_field).batches():
        for k, text in enumerate(batch.texts):
            if _fold(text) in banned:
                dropped += 1
                continue
            pool.append({"text": text, "source": str(batch.fields[k].get("source", ""))})
    if not pool:
        raise TunesiftError("the pool is empty once the task's own texts are removed")
    return BenchTask(task, reservoir), pool, dropped


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


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
    # per test item, in test-split order: "test_nll"/"test_tokens" (perplexity),
    # "correct"/"pred" (downstream accuracy); empty when the mode gives none
    per_item: dict[str, list[float]] = field(default_factory=dict)


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


def run_path(out: Path, task: str, method: str, budget: int | None, seed: int, mode: str,
             key: str) -> Path:  # fmt: skip
    k = "none" if budget is None else str(budget)
    return out / "runs" / task / f"{method}-k{k}-s{seed}-{mode}-{key}.json"


def _select(
    prep: Any, method: str, budget: int, seed: int, bt: BenchTask, pool_texts: list[str],
    device: str,
) -> list[str]:  # fmt: skip
    if method == ORACLE:
        return bt.oracle(budget, seed)
    sel = run_method(prep, method, Budget(docs=budget), seed=seed, device=device)
    return [pool_texts[i] for i in sel.indices]


def run_bench(
    preset: str | Preset,
    out_dir: str | Path,
    *,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
    user_task: UserTask | None = None,
) -> dict[str, Any]:
    """Run a preset (or the preset's protocol on ``user_task``) end to end, resuming from the
    finished runs under ``out_dir/runs``; write ``results.csv``, ``results.json``, ``results.md``.

    The returned dict holds ``executed`` (the runs computed by this call) and ``reused`` (those
    loaded from an earlier call) besides what ``results.json`` holds.
    """
    if isinstance(preset, str) and preset not in PRESETS:
        raise TunesiftError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    spec = PRESETS[preset] if isinstance(preset, str) else preset
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
                paths = {m: run_path(out, task.name, name, budget, seed, m, keys[m])
                         for m in spec.modes}  # fmt: skip
                todo = [m for m in spec.modes if not paths[m].exists()]
                for m in spec.modes:
                    if m not in todo:
                        rows.append(BenchRow(**json.loads(paths[m].read_text())))
                        reused += 1
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
                    texts = _select(prep, name, budget, seed, bt, pool_texts, device)
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
                                   time.perf_counter() - t0, per_item)  # fmt: skip
                    write_text_atomic(paths[mode], json.dumps(asdict(row)) + "\n")
                    rows.append(row)
                    executed += 1
                    say(f"{task.name} {name} k={budget} seed={seed} {mode}: "
                        + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))  # fmt: skip
    say(f"{executed} runs computed, {reused} loaded from {out / 'runs'}")
    comparisons = compare_rows(rows, n_boot=spec.n_boot)
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
        "rows": [asdict(r) for r in rows],
        "comparisons": comparisons,
    }
    write_text_atomic(out / "results.json", json.dumps(result, indent=1) + "\n")
    header = ["task", "method", "budget", "seed", "mode", "metric", "value", "select_seconds",
              "eval_seconds"]  # fmt: skip
    lines: list[list[Any]] = [header]
    for r in rows:
        for k, v in r.metrics.items():
            lines.append([r.task, r.method, r.budget, r.seed, r.mode, k, v,
                          round(r.select_seconds, 3), round(r.eval_seconds, 3)])  # fmt: skip
    write_text_atomic(out / "results.csv", _csv_text(lines))
    md = markdown_table(rows) + "\n\n" + interval_table(comparisons) + "\n"
    write_text_atomic(out / "results.md", md)
    return result


def _csv_text(lines: Sequence[Sequence[Any]]) -> str:
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows(lines)
    return buf.getvalue()


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
    """One causal evaluation. The untouched model's scores do not depend on the seed unless a
    downstream fine-tune follows (accuracy), so without one the baseline is scored once."""
    from tunesift.evaluate.causal import evaluate_causal

    if texts is None and baseline:
        return dict(baseline["metrics"]), dict(baseline["per_item"])
    result = evaluate_causal(texts, task, cfg, seed)
    # a metric the run did not compute (zero-shot or downstream switched off) is None: left out
    metrics = {k: float(v) for k, v in causal_metrics(result).items() if v is not None}
    for k in ("accuracy", "macro_f1"):
        v = getattr(result, k, None)
        if v is not None:
            metrics[k] = float(v)
    per_item = _per_item(result)
    if texts is None and "accuracy" not in metrics:
        baseline.update(metrics=metrics, per_item=per_item)
    return metrics, per_item


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
COMPARED = ("perplexity", "accuracy", "macro_f1")


def _paired(
    a: dict[int, BenchRow], b: dict[int, BenchRow], metric: str, n_boot: int
) -> dict[str, Any] | None:
    """The paired difference a − b of ``metric`` over their common seeds."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    ra, rb = [a[s] for s in seeds], [b[s] for s in seeds]

    def have(*keys: str) -> bool:
        return all(k in r.per_item and r.per_item[k] for r in ra + rb for k in keys)

    if metric == "perplexity" and have("test_nll", "test_tokens"):
        d = perplexity_difference(
            [r.per_item["test_nll"] for r in ra], [r.per_item["test_tokens"] for r in ra],
            [r.per_item["test_nll"] for r in rb], [r.per_item["test_tokens"] for r in rb],
            n_boot=n_boot,
        )  # fmt: skip
        return {"seeds": seeds, "absolute": d.absolute.to_dict(), "percent": d.percent.to_dict(),
                "reference_value": d.reference}  # fmt: skip
    if metric == "accuracy" and have("correct"):
        iv = mean_difference([r.per_item["correct"] for r in ra],
                             [r.per_item["correct"] for r in rb], n_boot=n_boot)  # fmt: skip
        return {"seeds": seeds, "absolute": iv.to_dict(), "percent": None}
    if metric == "macro_f1" and have("pred", "gold"):
        iv = macro_f1_difference(
            [[int(x) for x in r.per_item["pred"]] for r in ra],
            [[int(x) for x in r.per_item["pred"]] for r in rb],
            [int(x) for x in ra[0].per_item["gold"]], n_boot=n_boot,
        )  # fmt: skip
        return {"seeds": seeds, "absolute": iv.to_dict(), "percent": None}
    t = t_interval([x.metrics[metric] - y.metrics[metric] for x, y in zip(ra, rb, strict=True)])
    return {"seeds": seeds, "absolute": t.to_dict(), "percent": None}


def compare_rows(rows: Sequence[BenchRow], n_boot: int = 2000) -> list[dict[str, Any]]:
    """Every row group (task, method, budget, mode) against ``random`` at the same budget and
    against the baseline, per compared metric, paired by seed (and by test item where the rows
    carry per-item arrays: a two-level bootstrap; else a t-interval over seeds)."""
    by: dict[tuple[str, str, int | None, str], dict[int, BenchRow]] = defaultdict(dict)
    for r in rows:
        by[(r.task, r.method, r.budget, r.mode)][r.seed] = r
    out: list[dict[str, Any]] = []
    for (task, method, budget, mode), runs in by.items():
        if method == BASELINE:
            continue
        refs = [(RANDOM, by.get((task, RANDOM, budget, mode)))] if method != RANDOM else []
        refs.append((BASELINE, by.get((task, BASELINE, None, mode))))
        metrics = [m for m in COMPARED if m in next(iter(runs.values())).metrics]
        for ref_name, ref in refs:
            if not ref:
                continue
            for metric in metrics:
                if not all(metric in r.metrics for r in ref.values()):
                    continue
                d = _paired(runs, ref, metric, n_boot)
                if d is not None:
                    out.append({"task": task, "method": method, "budget": budget, "mode": mode,
                                "metric": metric, "reference": ref_name, **d})  # fmt: skip
    return out


def _interval_of(d: dict[str, Any], scale: float = 1.0) -> Interval:
    return Interval(d["estimate"] * scale, d["low"] * scale, d["high"] * scale, d["kind"],
                    d["n_seeds"], d["n_items"], d["level"])  # fmt: skip


def _cell(c: dict[str, Any] | None, scale: float) -> str:
    """``-2.31 [-4.02, -0.60]* (-2.1% [-3.6%, -0.5%]*)``; ``t`` marks a t-interval over seeds."""
    if c is None:
        return "-"
    iv = _interval_of(c["absolute"], scale)
    digits = 2 if scale != 1 or max(abs(iv.estimate), abs(iv.half_width)) >= 1 else 3
    text = iv.text(digits)
    if c.get("percent"):
        p = _interval_of(c["percent"])
        star = "*" if p.significant else ""
        text += f" ({p.estimate:+.1f}% [{p.low:+.1f}%, {p.high:+.1f}%]{star})"
    return text + ("" if iv.kind == "bootstrap" else " t")


def interval_table(comparisons: Sequence[dict[str, Any]]) -> str:
    """Markdown: each method minus random and minus the baseline, 95% intervals."""
    groups: dict[tuple[str, str, int | None, str, str], dict[str, dict[str, Any]]] = {}
    for c in comparisons:
        key = (c["task"], c["method"], c["budget"], c["mode"], c["metric"])
        groups.setdefault(key, {})[c["reference"]] = c
    lines = [
        "Paired differences, method − reference on the same seeds and test items: mean "
        "[95% interval]; `*` significant (the interval excludes 0); perplexity also in % of the "
        "reference's (lower is better); accuracy and macro-F1 in points. Intervals are a "
        "two-level bootstrap (seeds, then test items), or `t` over seeds where a run kept no "
        "per-item scores.",
        "",
        f"| task | method | budget | mode | metric | − {RANDOM} | − {BASELINE} |",
        "|---|---|---|---|---|---|---|",
    ]
    for (task, method, budget, mode, metric), refs in groups.items():
        scale = 1.0 if metric in LOWER_IS_BETTER else 100.0
        lines.append(
            f"| {task} | {method} | {budget or '-'} | {mode} | {metric} | "
            f"{_cell(refs.get(RANDOM), scale)} | {_cell(refs.get(BASELINE), scale)} |"
        )
    return "\n".join(lines)
