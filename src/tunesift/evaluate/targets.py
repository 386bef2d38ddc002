"""``tunesift bench``'s targets: a labeled task, its in-domain reservoir, and the pool.

:func:`build_task` cuts a preset's source into fixed test and train splits and an unlabeled
reservoir (the oracle row's texts); :func:`build_pool` draws the pool every method selects from,
minus every task's texts; :func:`build_user_task` does both for a user's own files
(:class:`UserTask`, ``bench --task-train/--task-test/--pool``). :class:`BenchTask` draws a seed's
target sample and oracle selection.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from tunesift.corpora.build import get_source
from tunesift.errors import TunesiftError
from tunesift.evaluate.presets import Preset, TaskSpec
from tunesift.evaluate.task import LabeledTask


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
    for rec in src.records():
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
        for r in src.records():
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
