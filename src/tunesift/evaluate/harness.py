"""``tunesift evaluate``: pre-fine-tune on each selection, then measure the target, over seeds.

Protocol (docs/benchmarks.md): every selection is evaluated with the same model and the same
hyper-parameters (recorded in the output), over the same seeds, beside a "no pre-fine-tuning"
baseline that always runs; results are mean ± std over seeds. Before anything trains, the
leakage guard checks that no selected text is one of the target's labeled training or test
texts (case and whitespace folded): a selection that leaks the test set proves nothing.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesift.corpus.corpus import Corpus
from tunesift.errors import InputError, TunesiftError
from tunesift.evaluate.fast import FastConfig, evaluate_fast
from tunesift.evaluate.task import LabeledTask

if TYPE_CHECKING:
    from tunesift.evaluate.causal import CausalConfig
    from tunesift.evaluate.encoder import EncoderConfig

BASELINE = "no-pre-fine-tuning"


def _fold(text: str) -> str:
    return " ".join(text.lower().split())


def read_texts(paths: Sequence[str | Path], text_field: str = "text") -> list[str]:
    """Texts of JSONL/Parquet/CSV/... files (bad records are an error naming file and line)."""
    return [t for b in Corpus(list(paths), text_field=text_field).batches() for t in b.texts]


def load_task(
    train: str | Path,
    test: str | Path,
    *,
    name: str | None = None,
    text_field: str = "text",
    label_field: str = "label",
) -> LabeledTask:
    """A labeled task from two files whose records hold a text and a label."""

    def read(path: str | Path) -> tuple[list[str], list[str]]:
        corpus = Corpus([path], text_field=text_field)
        texts, labels = [], []
        for batch in corpus.batches():
            for k, text in enumerate(batch.texts):
                label = batch.fields[k].get(label_field)
                if label is None or str(label) == "":
                    where, line = batch.location[k]
                    raise InputError(f"record has no {label_field!r} field", f"{where}:{line}")
                texts.append(text)
                labels.append(str(label))
        return texts, labels

    train_texts, train_labels = read(train)
    test_texts, test_labels = read(test)
    return LabeledTask(name or Path(train).stem, train_texts, train_labels, test_texts, test_labels)


def check_leakage(name: str, selected: Sequence[str], task: LabeledTask) -> None:
    """Raise when a selected text is one of the task's labeled train or test texts."""
    held = {_fold(t): "test" for t in task.test_texts}
    held.update({_fold(t): "train" for t in task.train_texts if _fold(t) not in held})
    leaks = [(held[f], t) for t in selected if (f := _fold(t)) in held]
    if leaks:
        split, example = leaks[0]
        raise TunesiftError(
            f"selection {name!r} holds {len(leaks)} of the target's labeled texts "
            f"(first, from {split}: {example[:60]!r}); remove the target from the pool"
        )


@dataclass
class Row:
    selection: str
    seed: int
    metrics: dict[str, float]
    seconds: float


@dataclass
class Report:
    mode: str
    task: str
    seeds: list[int]
    config: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, tuple[float, float]]]:
        """selection -> metric -> (mean, std over seeds; std 0 for one seed)."""
        out: dict[str, dict[str, tuple[float, float]]] = {}
        names = list(dict.fromkeys(r.selection for r in self.rows))
        for name in names:
            rows = [r for r in self.rows if r.selection == name]
            out[name] = {}
            for metric in rows[0].metrics:
                vals = [r.metrics[metric] for r in rows]
                std = statistics.stdev(vals) if len(vals) > 1 else 0.0
                out[name][metric] = (statistics.fmean(vals), std)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["summary"] = {
            n: {m: {"mean": v[0], "std": v[1]} for m, v in ms.items()}
            for n, ms in self.summary().items()
        }
        return d

    def table(self) -> str:
        summary = self.summary()
        metrics = list(next(iter(summary.values())))
        lines = [
            f"tunesift evaluate ({self.mode}) on {self.task}, seeds {self.seeds}",
            "  " + f"{'selection':<24}" + "".join(f"{m:>22}" for m in metrics),
        ]
        for name, ms in summary.items():
            lines.append(
                "  " + f"{name:<24}"
                + "".join(f"{f'{ms[m][0]:.4g} ± {ms[m][1]:.2g}':>22}" for m in metrics)
            )  # fmt: skip
        return "\n".join(lines)


def environment() -> dict[str, Any]:
    import numpy as np

    from tunesift._version import __version__

    env: dict[str, Any] = {
        "tunesift": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return env


def causal_metrics(result: Any) -> dict[str, float]:
    """The numbers a causal-mode row reports (perplexity is lower-is-better): perplexity, the
    downstream probe's accuracy and macro-F1, and the zero-shot ``mc_*`` scores; a metric the
    run did not compute (``downstream="none"``, ``zero_shot=False``) is left out."""
    metrics = {
        "perplexity": result.perplexity,
        "accuracy": getattr(result, "accuracy", None),
        "macro_f1": getattr(result, "macro_f1", None),
        "mc_accuracy": result.mc_accuracy,
        "mc_macro_f1": result.mc_macro_f1,
        "mc_accuracy_pmi": result.mc_accuracy_pmi,
    }
    return {k: float(v) for k, v in metrics.items() if v is not None}


def evaluate(
    selections: dict[str, Sequence[str]],
    task: LabeledTask,
    *,
    mode: str = "fast",
    base: Sequence[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    fast_config: FastConfig | None = None,
    encoder_config: EncoderConfig | None = None,
    causal_config: CausalConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Evaluate each selection (name -> texts) and the no-pre-fine-tuning baseline on ``task``.

    ``mode="fast"``: held-out perplexity of the task's test texts under the Lemma 1 n-gram view
    (``base`` is the corpus standing for pre-training, usually the pool); deterministic, so the
    seeds repeat the same number. ``mode="encoder"``: masked-LM pre-fine-tuning of an encoder on
    the selection, then a classifier fine-tuned on the task's train split; accuracy and
    macro-F1 on its test split. ``mode="causal"``: continued causal-LM training (LoRA by default)
    of SmolLM2 on the selection, then the perplexity of the task's test texts and zero-shot
    multiple-choice accuracy and macro-F1 by label log-likelihood (the train split is unused).

    Parameters
    ----------
    selections : dict of str to sequence of str
        Selection name -> its texts (e.g. ``read_texts(["runs/gotd/selected.jsonl"])``). A
        selection holding one of the task's labeled texts is refused (``check_leakage``).
    task : LabeledTask
        The target: labeled train and test splits (``load_task(train_file, test_file)``).
    mode : "fast", "encoder" or "causal"
    base : sequence of str or None
        Fast mode: the corpus standing for pre-training (usually the pool); unused otherwise.
    seeds : sequence of int
        Every selection and the baseline run once per seed (the same seeds for all).
    fast_config, encoder_config, causal_config : configuration or None
        The mode's hyper-parameters (``FastConfig``, ``EncoderConfig``, ``CausalConfig``; None
        is the defaults), recorded in the report; the device is the config's ``device``.
    progress : callable or None
        Receives one line per finished run.

    Returns
    -------
    Report
        ``rows`` (selection, seed, metrics, seconds), ``summary()`` (mean and std over seeds),
        ``table()`` and ``to_dict()`` (JSON-ready, with the configuration and the environment).
    """
    if BASELINE in selections:
        raise TunesiftError(f"{BASELINE!r} is the baseline's name; rename that selection")
    if not seeds:
        raise TunesiftError("give at least one seed")
    for name, picked in selections.items():
        check_leakage(name, picked, task)
    runs: dict[str, Sequence[str] | None] = {BASELINE: None, **selections}
    report = Report(
        mode=mode, task=task.name, seeds=list(seeds), config={}, environment=environment()
    )

    # each mode: its configuration for the report, and a scorer of (texts or None, seed)
    score: Callable[[Sequence[str] | None, int], dict[str, float]]
    if mode == "fast":
        cfg = fast_config or FastConfig()
        report.config = {"fast": cfg.to_dict(), "base_texts": len(base or ())}

        def score(texts, seed):
            return {"perplexity": evaluate_fast(texts, base or [], task.test_texts, cfg).perplexity}

    elif mode == "encoder":
        from tunesift.evaluate.encoder import EncoderConfig, evaluate_encoder

        cfg_e = encoder_config or EncoderConfig()
        report.config = {"encoder": cfg_e.to_dict()}

        def score(texts, seed):
            r = evaluate_encoder(list(texts) if texts else None, task, cfg_e, seed)
            return {"accuracy": r.accuracy, "macro_f1": r.macro_f1}

    elif mode == "causal":
        from tunesift.evaluate.causal import CausalConfig, evaluate_causal

        cfg_c = causal_config or CausalConfig()
        report.config = {"causal": cfg_c.to_dict()}

        def score(texts, seed):
            return causal_metrics(
                evaluate_causal(list(texts) if texts else None, task, cfg_c, seed)
            )

    else:
        raise TunesiftError(f"mode must be 'fast', 'encoder' or 'causal', got {mode!r}")
    for name, texts in runs.items():
        for seed in seeds:
            t0 = time.perf_counter()
            metrics = score(texts, seed)
            report.rows.append(Row(name, seed, metrics, time.perf_counter() - t0))
            if progress:
                progress(
                    f"{name} seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
                )
    report.environment["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return report
