"""``tunesift bench``'s presets: what a bench run covers and at what size.

A :class:`Preset` names its targets (:class:`TaskSpec`), methods, budgets, seeds and modes, and
the sizes of the pool and of each target's splits; ``PRESETS`` holds the named ones (``smoke``,
``cpu``, ``gpu``, ``causal-cpu``, ``causal``, ``causal-gpu``) and :func:`restrict` cuts one down to
some of its tasks or to other methods, modes, budgets or seeds (``--tasks``, ``--budgets`` ...).
The protocol itself is in ``evaluate.bench``'s docstring and docs/evaluation.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tunesift.errors import TunesiftError
from tunesift.methods import NAMES

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
    # methods every other method is also compared with (paired, as against random), e.g. a
    # simpler selector; not part of any run's key, so it can be set on a finished bench
    against: tuple[str, ...] = ()

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
    # per label), 32 tokens, batch 8. Measured on 2 cores (docs/benchmarks.md): ~3.5 min a
    # budget-100 run alone, so the whole grid (132 runs) is ~8 hours, not the 150 minutes aimed
    # at; it is resumable and runs in parts (--tasks/--methods/--budgets into one --out)
    "causal": Preset(
        "causal", FOUR_TASKS, ("gotd", "dsir", "rds", "random", "oracle"), (100, 400),
        (0, 1, 2), ("causal",), pool_per_source=2000, train_per_label=64, test_per_label=100,
        target_per_label=32, oracle_per_label=200,
        causal={"max_length": 32, "epochs": 1, "batch_size": 8, "lr": 1e-3},
    ),
    # the causal protocol for one <= 8-minute H100/H200 window: larger budgets and sequences
    # (benchmarks/causal_gpu.sh runs it on a GPU machine without network or corpora; not run yet)
    # and 4x the test items: with 100 per label the items alone hold the perplexity interval
    # above +-1% of the untouched model's at any number of seeds (benchmarks/causal_power.py).
    # Only three FOLDOC labels hold the 464 texts a label needs, so its task is foldoc-3 here.
    "causal-gpu": Preset(
        "causal-gpu", FOUR_TASKS, ("gotd", "dsir", "rds", "random", "oracle"), (400, 1600),
        (0, 1, 2), ("causal",), pool_per_source=5000, train_per_label=64, test_per_label=400,
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
    against: Sequence[str] | None = None,
) -> Preset:
    """The preset with only some of its tasks, or other methods, modes, budgets or seeds, or
    more references to compare every method with (``against``: methods of the bench)."""
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
        bad = [m for m in methods if m not in NAMES and m not in REFERENCES]
        if bad:
            choices = ", ".join([*NAMES, *REFERENCES])
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
    if against:
        run = changes.get("methods", spec.methods)
        bad = [m for m in against if m not in run]
        if bad:
            raise TunesiftError(
                f"against {bad[0]!r} is not a method of this bench; it runs {', '.join(run)}",
                param="against",
            )
        changes["against"] = tuple(dict.fromkeys(against))
    return dataclasses.replace(spec, **changes) if changes else spec
