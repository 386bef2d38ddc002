"""What the loss-based selectors share: one scoring LM in two fitted states, a score per text
that is the difference of its losses in the two.

CoLoR-Filter (``methods/color_filter.py``) compares a prior model with the same model fine-tuned
on the target; learnability (``methods/learnability.py``) the model before and after a short
fine-tune on the pool. Both read raw texts, load their LM through ``tunesift.models`` (LoRA
adapters on a ``TinyLM``, SmolLM2-135M or a local causal-LM folder) and keep the two states as
flat arrays of the trainable parameters: small (the adapters only), saved with the method, and
enough to rebuild the scorer anywhere from the same model files and seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.methods.base import Method


def _positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TunesiftError(f"{name} must be a positive integer, got {value!r}", param=name)


class LossGapMethod(Method):
    """A text method whose fit leaves two states of one scoring LM (abstract: no ``name``).

    Subclasses take these ``__init__`` parameters (the shared checks read them): ``model``,
    ``max_length``, ``steps``, ``batch_size``, ``lr``, ``warmup_ratio``, ``lora_r``,
    ``lora_alpha``, ``seed``, ``device``, ``threads``, ``progress``.
    """

    inputs = "texts"
    model: str
    max_length: int
    steps: int
    batch_size: int
    lr: float
    warmup_ratio: float
    lora_r: int
    lora_alpha: int
    seed: int
    device: str
    threads: int | None
    progress: bool
    #: the scoring LM, built on first use and cached on the instance (never saved or pickled)
    _lm: Any = None

    def _check_params(self) -> None:
        from tunesift.models.device import check_device

        if not isinstance(self.model, str) or not self.model:
            raise TunesiftError(
                f"model must be 'tinylm', 'smollm2' or a local causal-LM folder, got "
                f"{self.model!r}",
                param="model",
            )
        for name in ("batch_size", "lora_r", "lora_alpha"):
            _positive_int(getattr(self, name), name)
        length = self.max_length
        if isinstance(length, bool) or not isinstance(length, int) or length < 2:
            raise TunesiftError(
                f"max_length must be an integer of at least 2, got {length!r}", param="max_length"
            )
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise TunesiftError(
                f"steps must be a non-negative integer, got {self.steps!r}", param="steps"
            )
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise TunesiftError(f"lr must be positive, got {self.lr!r}", param="lr")
        if not isinstance(self.warmup_ratio, (int, float)) or not 0 <= self.warmup_ratio <= 1:
            raise TunesiftError(
                f"warmup_ratio must be in [0, 1], got {self.warmup_ratio!r}", param="warmup_ratio"
            )
        check_device(self.device)
        t = self.threads
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
            raise TunesiftError(
                f"threads must be a positive integer or None, got {t!r}", param="threads"
            )

    # --- the scoring LM, built on first use (after fit, or after load) ------------------------

    def _torch_device(self) -> Any:
        from tunesift.models.device import resolve_device

        return resolve_device(self.device)

    def _scoring_lm(self) -> Any:
        """The LoRA-wrapped LM (cached on the instance, never saved): the base from the model
        files or the seed, the adapters as the seed draws them until a state is loaded."""
        lm = self._lm
        if lm is None:
            from tunesift.models.lora import LoRASpec
            from tunesift.models.per_example_grads import load_scoring_lm

            spec = LoRASpec(r=self.lora_r, alpha=self.lora_alpha, dropout=0.0, target_modules=())
            lm = load_scoring_lm(
                self.model,
                max_length=self.max_length,
                lora=spec,
                seed=self.seed,
                device=self._torch_device(),
            )
            self._lm = lm
        return lm

    def _rows(self, texts: Sequence[str]) -> list[list[int]]:
        for t in texts:
            if not isinstance(t, str):
                raise TunesiftError(f"{self.name} scores texts, got a {type(t).__name__}")
        lm = self._scoring_lm()
        return [lm.encode(t) for t in texts]

    def _pool_sample(self, pool_size: int, steps: int, stream: int) -> np.ndarray:
        """The pool rows a fine-tune of ``steps`` updates trains on: ``steps * batch_size`` of
        them (all when the pool is smaller), drawn without replacement from the run's seed and
        ``stream``, in pool order."""
        rng = np.random.default_rng([self.seed, stream])
        k = min(pool_size, steps * self.batch_size)
        if not k:
            return np.zeros(0, dtype=np.int64)
        return np.sort(rng.choice(pool_size, size=k, replace=False))

    def _fine_tune(
        self,
        rows: Sequence[Sequence[int]],
        steps: int,
        desc: str,
        on_step: Callable[[int, Any], None] | None = None,
    ) -> np.ndarray:
        """Train the current state ``steps`` updates on ``rows``; the step losses.
        ``on_step(step, optimizer)`` runs after each update (S2L's checkpoints)."""
        from tunesift.models.losses import fine_tune
        from tunesift.models.seeds import torch_threads

        lm = self._scoring_lm()
        with torch_threads(self.threads):
            losses = fine_tune(
                lm,
                rows,
                steps=steps,
                batch_size=self.batch_size,
                lr=float(self.lr),
                warmup_ratio=float(self.warmup_ratio),
                seed=self.seed,
                device=self._torch_device(),
                desc=desc,
                show_progress=self.progress,
                on_step=on_step,
            )
        return np.asarray(losses, dtype=np.float64)

    def _state(self) -> np.ndarray:
        from tunesift.models.per_example_grads import flat_trainable

        return flat_trainable(self._scoring_lm().model)

    def _losses(self, states: Sequence[np.ndarray], texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's mean token loss under each state, float64."""
        from tunesift.models.losses import losses_under
        from tunesift.models.seeds import torch_threads

        rows = self._rows(texts)
        with torch_threads(self.threads):
            return losses_under(
                self._scoring_lm(),
                states,
                rows,
                batch_size=self.batch_size,
                device=self._torch_device(),
            )

    def __getstate__(self) -> dict[str, Any]:
        # the LM is rebuilt where the method lands (an engine's worker), from the saved states
        return {k: v for k, v in vars(self).items() if k != "_lm"}
