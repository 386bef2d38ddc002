"""LESS: pool rows whose Adam-preconditioned LoRA gradients point where the target's gradients do.

Xia, Malladi, Gururangan, Arora, Chen. "LESS: Selecting Influential Data for Targeted
Instruction Tuning", ICML 2024. Official code: princeton-nlp/LESS (``less/train``,
``less/data_selection/collect_grad_reps.py``, ``less/data_selection/matching.py``).

1. **Warm-up** (Sec. 3.1): LoRA on a random ``warmup_fraction`` of the pool (the paper: 5%) for
   ``epochs`` epochs (4), AdamW with linear warm-up (3% of the steps) then linear decay, no
   weight decay; a checkpoint at the end of every epoch keeps the adapter weights and AdamW's
   moments.
2. **Gradient features** (Sec. 2.2-3.2): at checkpoint i, a pool row z gets the Adam update
   direction of its own loss, Γ(z, θ_i) = m' / sqrt(v' + eps) with m' = β1 m_i + (1 - β1) ∇ℓ(z),
   v' = β2 v_i + (1 - β2) ∇ℓ(z)²; a target row z' gets its plain gradient ∇ℓ(z'; θ_i). Both are
   projected by one random Rademacher matrix (``tunesift.models.projection.Projector``, the
   package's one projector) and unit-normalized.
3. **Score** (Eq. 3 and Sec. 3.3): Inf(z, z') = Σ_i η̄_i cos(∇ℓ(z'; θ_i), Γ(z, θ_i)), with η̄_i
   the mean learning rate of epoch i (normalized to sum to 1, as ``matching.py`` does); for a
   target task its mean over the task's rows (the mean of unit target gradients, dotted); the
   row's score is the max over target tasks. The rows with the highest scores come first.

Kept from the official code: the Adam update without bias corrections and with eps under the
square root (``obtain_gradients_with_adam``; a cosine does not see the corrections, one scalar per
moment), plain (SGD) target gradients, unit-normalized projected gradients, one gradient per
example (batches of one), the model in eval mode (no LoRA dropout) when taking gradients, one
checkpoint per epoch weighted by the epoch's mean rate, the max over target tasks.

Changed, and why:
- the target tasks are the target rows' ``source`` (several sources, several tasks), of any
  size; ``matching.py`` reshapes its scores into ``N_SUBTASKS`` equal, contiguous blocks (57 for
  MMLU...), which silently mixes tasks when they differ in size.
- every pool row is scored: the official ``get_train_lora_grads.sh`` shipped with
  ``--max_samples 200``, which truncated the gradient store to the first 200 rows (LESS issue
  #34, fixed upstream) and its stores are resumed by file index, which skips rows when the
  save interval changes; here there is no store on disk to truncate.
- the checkpoints are the epoch ends of this run, counted from its own batches; the official
  README's checkpoint numbers (105, 211, 317, 420) and rates assume 4 GPUs x batch 1 x 32
  accumulation steps (an effective batch of 128), and are wrong on any other setup.
- defaults for a CPU: SmolLM2-135M (the paper: Llama-2-7B, Mistral-7B), LoRA r = 8 and alpha = 32
  (the paper: 128 and 512, the same alpha / r = 4) on q, k, v, o, batches of 8 (the paper: 128),
  texts cut to 128 tokens (2,048), a 1,024-dimensional projection (8,192; the paper's Table 9
  shows smaller dimensions lose a little). ``model="tinylm"`` takes a byte-level TinyLM drawn
  from the seed (the tests' model; its gradients tell texts apart, its warm-up starts from
  random weights). The projection is float32 on the CPU (TRAK's is float16 on the GPU).
- the warm-up sample, its batch order, the LoRA initialization and the projection are seeded
  (``seed``); the official data seed draws the sample, but TRAK's projector seed is fixed at 0.

Cost: the warm-up is ``epochs`` forward and backward passes over ``warmup_fraction`` of the
pool (batched); then every pool and target row takes one forward and one backward pass per
checkpoint (``epochs`` of them, one row at a time) and a projection of its LoRA gradient
(``n_params x projection_dim`` multiply-adds).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.methods.base import Method

#: seeds the warm-up's random share of the pool (a stream of its own: 0x1E55, "LESS")
_WARMUP_SAMPLE = 0x1E55


class LESS(Method):
    """LESS: max over target tasks of the lr-weighted cosine of Adam LoRA gradients.

    Parameters
    ----------
    model : str
        ``"smollm2"`` (SmolLM2-135M-Instruct from the local package), ``"tinylm"`` (a byte-level
        TinyLM drawn from ``seed``, for tests) or a local causal-LM folder.
    warmup_fraction : float
        Share of the pool the warm-up trains on (a seeded random sample; at least one row).
    epochs : int
        Warm-up epochs, one checkpoint at the end of each.
    lr : float
        Peak learning rate of the warm-up (AdamW, linear warm-up then linear decay).
    batch_size : int
        Warm-up batch size.
    warmup_ratio : float
        Share of the warm-up's steps with a rising rate.
    lora_r, lora_alpha, lora_dropout : int, int, float
        LoRA rank, scale numerator (the update is scaled by alpha / r) and dropout (training only).
    lora_target_modules : str
        Comma-separated linear layers that get adapters; empty: the attention projections
        (q_proj, k_proj, v_proj, o_proj; TinyLM's qkv and proj).
    projection_dim : int
        Dimension of the random projection of the gradients.
    max_length : int
        Tokens kept of every text.
    seed : int
        Seeds the warm-up sample, its batches, LoRA's initialization and the projection.
    device : str
        Where the model runs (``"auto"``, ``"cpu"``, ``"cuda"``...).
    threads : int or None
        torch CPU threads while training and taking gradients (None: torch's default);
        bit-identical scores across machines need the same count.
    progress : bool
        Progress bars.

    Attributes
    ----------
    weights_, exp_avg_, exp_avg_sq_ : ndarray of shape (n_checkpoints, n_params), float32
        The adapter weights and AdamW's first and second moments at every checkpoint.
    checkpoint_weights_ : ndarray of shape (n_checkpoints,)
        Each epoch's mean learning rate, normalized to sum to 1 (η̄_i).
    checkpoint_steps_ : tuple of int
        The update after which each checkpoint was kept.
    task_gradients_ : ndarray of shape (n_checkpoints, n_tasks, projection_dim), float32
        Per checkpoint and target task: the mean of the task's unit projected gradients.
    target_tasks_ : ndarray of shape (n_tasks,)
        The target task codes (the target rows' sources; one task 0 without sources).
    warmup_rows_ : ndarray of shape (n_warmup,)
        The pool rows the warm-up trained on.
    warmup_losses_ : ndarray of shape (n_steps,)
        The warm-up's loss at every step.
    n_params_ : int
        LoRA parameters (the length of a gradient before projection).
    """

    name = "less"
    inputs = "texts"
    # built on first use in this process, never saved (the fitted state rebuilds them)
    _lm: Any = None
    _device: Any = None
    _proj: Any = None
    _target_codes: np.ndarray | None = None

    def __init__(
        self,
        model: str = "smollm2",
        warmup_fraction: float = 0.05,
        epochs: int = 4,
        lr: float = 2e-5,
        batch_size: int = 8,
        warmup_ratio: float = 0.03,
        lora_r: int = 8,
        lora_alpha: int = 32,
        lora_dropout: float = 0.1,
        lora_target_modules: str = "",
        projection_dim: int = 1024,
        max_length: int = 128,
        seed: int = 0,
        device: str = "auto",
        threads: int | None = None,
        progress: bool = False,
    ):
        self.model = model
        self.warmup_fraction = warmup_fraction
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.warmup_ratio = warmup_ratio
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.lora_target_modules = lora_target_modules
        self.projection_dim = projection_dim
        self.max_length = max_length
        self.seed = seed
        self.device = device
        self.threads = threads
        self.progress = progress

    # --- the runner's hook: which target row belongs to which task -----------------------------

    def set_target_tasks(self, tasks: np.ndarray | None) -> None:
        """Each target row's task (its source code), before ``fit``; None: one task."""
        self._target_codes = None if tasks is None else np.asarray(tasks)

    # --- fit --------------------------------------------------------------------------------------

    def _check_params(self) -> None:
        for key in ("epochs", "batch_size", "lora_r", "projection_dim", "max_length"):
            value = getattr(self, key)
            if not is_int(value) or value < 1:
                raise TunesiftError(f"{key} must be a positive integer, got {value!r}", param=key)
        if not isinstance(self.model, str) or not self.model:
            raise TunesiftError(f"model must name a model, got {self.model!r}", param="model")
        if not is_real(self.warmup_fraction) or not 0 < self.warmup_fraction <= 1:
            raise TunesiftError(
                f"warmup_fraction must be in (0, 1], got {self.warmup_fraction!r}",
                param="warmup_fraction",
            )
        if not is_real(self.lr) or not self.lr > 0:
            raise TunesiftError(f"lr must be positive, got {self.lr!r}", param="lr")
        if not is_real(self.warmup_ratio) or not 0 <= self.warmup_ratio < 1:
            raise TunesiftError(
                f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}", param="warmup_ratio"
            )
        if not is_int(self.lora_alpha) or not self.lora_alpha > 0:
            raise TunesiftError(
                f"lora_alpha must be a positive integer, got {self.lora_alpha!r}",
                param="lora_alpha",
            )
        if not is_real(self.lora_dropout) or not 0 <= self.lora_dropout < 1:
            raise TunesiftError(
                f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}", param="lora_dropout"
            )
        if self.threads is not None and (not is_int(self.threads) or self.threads < 1):
            raise TunesiftError(
                f"threads must be a positive integer or None, got {self.threads!r}",
                param="threads",
            )
        if not isinstance(self.lora_target_modules, str):
            raise TunesiftError(
                "lora_target_modules must be comma-separated layer names",
                param="lora_target_modules",
            )
        from tunesift.models.device import check_device

        check_device(self.device)

    def _lora_spec(self) -> Any:
        from tunesift.models.lora import LoRASpec

        names = tuple(n.strip() for n in self.lora_target_modules.split(",") if n.strip())
        return LoRASpec(int(self.lora_r), int(self.lora_alpha), float(self.lora_dropout), names)

    def _scoring_lm(self) -> Any:
        """The LoRA-wrapped model, built once per process (not part of the fitted state)."""
        lm = self._lm
        if lm is None:
            lm = self._lm = self._load_lm(int(self.seed))
        return lm

    def _load_lm(self, seed: int) -> Any:
        """A new LoRA-wrapped scoring LM (TinyLM's weights drawn from ``seed``) on the resolved
        device (kept in ``_device``): LESS's one model, and each of DsDm's."""
        from tunesift.models.device import resolve_device
        from tunesift.models.per_example_grads import load_scoring_lm

        self._device = resolve_device(self.device)
        return load_scoring_lm(
            self.model,
            max_length=int(self.max_length),
            lora=self._lora_spec(),
            seed=seed,
            device=self._device,
        )

    def _projector(self, n_params: int) -> Any:
        from tunesift.models.projection import Projector

        proj = self._proj
        if proj is None or proj.n_params != n_params:
            proj = self._proj = Projector(n_params, int(self.projection_dim), seed=int(self.seed))
        return proj

    def fit(self, pool: list[str], target: list[str]) -> LESS:
        """Warm up LoRA on a random share of ``pool``; keep, per checkpoint, the adapter, Adam's
        moments and each target task's mean unit gradient."""
        from tunesift.models.seeds import run_scope

        self._check_params()
        if not target:
            raise TunesiftError("the target is empty: LESS needs target texts", param="target")
        codes = self._target_task_codes(len(target))
        tasks = np.unique(codes)
        self._warm_up(pool)
        lm = self._scoring_lm()
        target_rows = [lm.encode(t) for t in target]
        task_grads = np.zeros(
            (len(self.weights_), len(tasks), int(self.projection_dim)), dtype=np.float32
        )
        with run_scope(self.threads, self._device):
            for k, weights in enumerate(self.weights_):
                g = self._features(target_rows, weights, None, f"target gradients {k + 1}")
                task_grads[k] = task_gradients(g, codes, tasks)
        self.task_gradients_ = task_grads
        self.target_tasks_ = tasks
        return self

    def _target_task_codes(self, n_target: int) -> np.ndarray:
        """Each target row's task code: the runner's (``set_target_tasks``), or one task 0."""
        codes = self._target_codes
        if codes is None or len(codes) != n_target:
            codes = np.zeros(n_target, dtype=np.int64)
        return codes

    def _warmup_sample(self, pool_size: int, seed: int) -> np.ndarray:
        """The pool rows a warm-up trains on: a seeded ``warmup_fraction`` of them (at least
        one), in pool order (DsDm's model 0, seeded like LESS, warms up on LESS's rows)."""
        rng = np.random.default_rng([seed, _WARMUP_SAMPLE])
        n_warm = max(1, int(round(self.warmup_fraction * pool_size)))
        return np.sort(rng.choice(pool_size, size=n_warm, replace=False))

    def _run_warmup(self, lm: Any, rows: list[list[int]], seed: int) -> tuple[list[Any], Any]:
        """LoRA training of ``lm`` on the token ``rows`` with this method's schedule: the
        checkpoints (weights, Adam's moments, mean learning rate) and the step losses. The
        caller holds the ``run_scope``."""
        from tunesift.models.per_example_grads import warmup

        return warmup(
            lm,
            rows,
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            warmup_ratio=float(self.warmup_ratio),
            seed=seed,
            device=self._device,
            show_progress=bool(self.progress),
        )

    def _warm_up(self, pool: list[str]) -> None:
        """LoRA on a seeded random ``warmup_fraction`` of ``pool``; sets the checkpoints'
        attributes (``weights_``, ``exp_avg_``, ``exp_avg_sq_``, ``checkpoint_weights_``...)."""
        from tunesift.models.seeds import run_scope

        if not pool:
            raise TunesiftError(f"the pool is empty: {self.name} needs pool texts", param="pool")
        rows = self._warmup_sample(len(pool), int(self.seed))
        self._lm = None  # a refit warms up from the base model again, with the current parameters
        lm = self._scoring_lm()
        with run_scope(self.threads, self._device):
            checkpoints, losses = self._run_warmup(
                lm, [lm.encode(pool[i]) for i in rows], int(self.seed)
            )
        self.weights_ = np.stack([c.weights for c in checkpoints])
        self.exp_avg_ = np.stack([c.exp_avg for c in checkpoints])
        self.exp_avg_sq_ = np.stack([c.exp_avg_sq for c in checkpoints])
        self.checkpoint_weights_ = checkpoint_weights([c.mean_lr for c in checkpoints])
        self.checkpoint_steps_ = tuple(int(c.step) for c in checkpoints)
        self.warmup_rows_ = rows.astype(np.int64)
        self.warmup_losses_ = np.asarray(losses, dtype=np.float64)
        self.n_params_ = int(self.weights_.shape[1])

    def _features(
        self,
        rows: list[list[int]],
        weights: np.ndarray,
        moments: tuple[np.ndarray, np.ndarray] | None,
        desc: str,
    ) -> np.ndarray:
        """Unit projected gradients of ``rows`` at the adapter ``weights`` (Adam's with
        ``moments``, plain without)."""
        from tunesift.models.per_example_grads import gradient_features, load_flat_trainable

        lm = self._scoring_lm()
        load_flat_trainable(lm.model, weights)
        return gradient_features(
            lm,
            rows,
            self._projector(len(weights)),
            device=self._device,
            moments=moments,
            show_progress=bool(self.progress),
            desc=desc,
        )

    # --- score ------------------------------------------------------------------------------------

    def score(self, pool: list[str]) -> np.ndarray:
        """max over target tasks of Σ_i η̄_i cos(mean target gradient, Adam direction of the row)."""
        from tunesift.models.seeds import run_scope

        self.check_is_fitted()
        lm = self._scoring_lm()
        rows = [lm.encode(t) for t in pool]
        if not rows:
            return np.zeros(0)
        influences = []
        with run_scope(self.threads, self._device):
            for k in range(len(self.weights_)):
                moments = (self.exp_avg_[k], self.exp_avg_sq_[k])
                g = self._features(rows, self.weights_[k], moments, f"pool gradients {k + 1}")
                influences.append(g @ self.task_gradients_[k].T)
        return less_scores(influences, self.checkpoint_weights_)

    def diagnostics(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model, "projection_dim": self.projection_dim}
        if self.is_fitted():
            d.update(
                lora_parameters=self.n_params_,
                warmup_rows=int(len(self.warmup_rows_)),
                warmup_loss_first=float(self.warmup_losses_[0]),
                warmup_loss_last=float(self.warmup_losses_[-1]),
                checkpoint_steps=list(self.checkpoint_steps_),
                checkpoint_weights=[float(w) for w in self.checkpoint_weights_],
                target_tasks=int(len(self.target_tasks_)),
            )
        return d


def checkpoint_weights(mean_lrs: Sequence[float]) -> np.ndarray:
    """η̄_i / Σ_j η̄_j: each checkpoint's mean learning rate, normalized to sum to 1."""
    rates = np.asarray(mean_lrs, dtype=np.float64)
    if not len(rates) or not (rates > 0).all():
        raise TunesiftError("every LESS checkpoint needs a positive mean learning rate")
    return rates / rates.sum()


def task_gradients(unit_grads: np.ndarray, codes: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """(n_tasks, d): per task, the mean of its rows' unit gradients. Dotted with a pool row's
    unit gradient it is the mean cosine over the task's rows (``matching.py``'s ``mean(-1)``)."""
    codes = np.asarray(codes)
    return np.stack([unit_grads[codes == c].mean(axis=0) for c in tasks]).astype(np.float32)


def less_scores(influences: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """max over tasks of Σ_i w_i influences[i]: ``influences[i]`` is (n, n_tasks), the mean
    cosines of the pool rows to each task at checkpoint i (Xia et al. 2024, Eq. 3 and Sec. 3.3)."""
    total = np.zeros(np.shape(influences[0]), dtype=np.float64)
    for w, infl in zip(weights, influences, strict=True):
        total += float(w) * np.asarray(infl, dtype=np.float64)
    return total.max(axis=1)


def is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)
