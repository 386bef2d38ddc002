"""DsDm: the pool rows a linear datamodel predicts will lower the target's loss the most.

Engstrom, Feldmann, Madry. "DsDm: Model-Aware Dataset Selection with Datamodels", ICML 2024.
Official code: MadryLab/DsDm (``dsdm/selections.py``). Datamodels estimated with TRAK: Park,
Georgiev, Ilyas, Leclerc, Madry. "TRAK: Attributing Model Behavior at Scale", ICML 2023; code
MadryLab/trak (``trak/traker.py``, ``trak/score_computers.py``, ``trak/modelout_functions.py``).

DsDm (Sec. 3) approximates the target loss of a model trained on a subset S of the pool by a
linear datamodel, L(S) ≈ Σ_{i in S} θ_i, and selects the k rows of smallest θ_i: those predicted
to lower the target loss most. θ is estimated with TRAK, here as follows.

1. **Models** (TRAK's ensemble): ``n_models`` LoRA warm-ups of the scoring LM, each on its own
   seeded random ``warmup_fraction`` of the pool (LESS's warm-up, ``tunesift.models``), with a
   checkpoint at the end of each of its ``epochs``; C = n_models x epochs checkpoints.
2. **Features** (TRAK Sec. 3.3-3.4): at checkpoint c, a text's model output is TRAK's margin of
   the true class taken per token and averaged, f(z) = mean_t log(p_t / (1 - p_t)); its
   gradient with respect to the LoRA adapters is projected by a random Rademacher matrix P_c
   (``tunesift.models.projection.Projector``, a fresh one per checkpoint as TRAK seeds
   ``seed + 1e4 * model_id``): φ_c(z) = P_cᵀ ∇f(z; θ_c). The out-to-loss weight of a pool row is
   Q_c(i) = mean_t (1 - p_t) (``tunesift.models.per_example_grads.log_odds_gradients``).
3. **Kernel** (TRAK Eq. 17, ``get_x_xtx_inv``): with Φ_c the (n, d) features of every pool row
   ``fit`` sees, τ_c(z, i) = φ_c(z)ᵀ (Φ_cᵀ Φ_c + λ_c I)⁻¹ φ_c(i), λ_c = ``lambda_reg`` x
   tr(Φ_cᵀ Φ_c) / d.
4. **Ensemble** (``finalize_scores``): τ(z, i) = mean_c τ_c(z, i) x mean_c Q_c(i).
5. **Target** (DsDm): the target loss is a mean over target rows, so a row's score is
   s(i) = (1/K) Σ_k (1/|T_k|) Σ_{z in T_k} τ(z, i) over the K target tasks (the target rows'
   sources; the official ``lm_task_mix`` is the mean of its three tasks' datamodels). τ > 0:
   training on row i raises the target's log-odds, i.e. lowers its loss; s(i) = -θ_i up to
   TRAK's scale. Rows are taken in decreasing s (``selections.py`` takes the largest stored
   values: argsort, last k).

Kept from TRAK: the model output (the log-odds margin of the correct class; one class per
token here), gradients of one example per backward pass, a Rademacher projection redrawn per
checkpoint, the ridge-regularized kernel inverse over the whole candidate set's features, the
out-to-loss reweighting averaged over checkpoints and applied after the scores' mean, and the
uniform ensemble over models and checkpoints.

Dropped or changed, and why:
- λ is relative, a share of the mean eigenvalue of Φᵀ Φ (TRAK's ``lambda_reg`` is absolute,
  default 0, which assumes many more training rows than projected dimensions; a small pool has
  fewer, and its kernel is singular). Being scale-free, it makes TRAK's division of the
  features by sqrt(#params) (``normalize_factor``) cancel, so it is dropped.
- TRAK rescales each checkpoint's inverse kernel by its mean absolute entry before the float16
  cast; that guards float16 and also weights checkpoints by their gradients' scale. Here the
  features are float32 and the kernel float64: no rescaling, every checkpoint counts the same.
- the models: the paper trains small LMs from scratch on random subsets of its candidate pool;
  here the ensemble members are LoRA warm-ups of a pretrained scoring LM on random shares of the
  pool (model 0's share is LESS's, from the same seed), and the features are the adapters'
  gradients (TRAK's ``grad_wrt`` restricted to them).
- the per-token output and weight are means over the text's tokens (a row is one example of
  the mean next-token loss, as LESS's features are), where TRAK's classifiers have one label.
- the official repository releases its precomputed datamodels and the selection rule, not the
  estimation code (its README: "Selecting data: coming soon"), so there is no official DsDm
  code to run for parity; ``tests/test_method_dsdm.py`` transcribes the estimator above on
  fixed gradients.
- defaults for a CPU: SmolLM2-135M with LoRA r = 8 (``model="tinylm"``: the tests' byte-level
  model), a 1,024-dimensional projection, LESS's warm-up (5% of the pool, 4 epochs), one model.

``fit`` scores the rows it is given (the runner gives it the whole pool: the kernel needs every
candidate's features) and keeps their scores under a digest of their text; ``score`` returns
them for those rows and computes a new row's features at every checkpoint.

Cost: the warm-ups (``n_models`` x ``epochs`` batched passes over ``warmup_fraction`` of the
pool); then every pool and target row takes one forward and one backward pass per checkpoint
(n_models x epochs of them, one row at a time) and a projection (``n_params x projection_dim``
multiply-adds); the kernel costs n d² + d³ per checkpoint.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.methods.less import LESS, is_int, is_real

#: derives the seeds of models 1, 2... from the run's seed ("D5D0")
_MODEL_STREAM = 0xD5D0
#: checkpoint k's projector is seeded ``seed + _PROJ_STRIDE * k`` (TRAK: seed + 1e4 x model id)
_PROJ_STRIDE = 10_000


class DsDm(LESS):
    """DsDm: the rows a TRAK-estimated datamodel predicts will lower the target loss most.

    Parameters
    ----------
    n_models : int
        Independent warm-ups in TRAK's ensemble (each on its own random share of the pool).
    lambda_reg : float
        Ridge term of the kernel (Φᵀ Φ + λ I), as a share of its mean eigenvalue tr(Φᵀ Φ) / d;
        0 takes the pseudo-inverse.
    model, warmup_fraction, epochs, lr, batch_size, warmup_ratio, lora_r, lora_alpha,
    lora_dropout, lora_target_modules, projection_dim, max_length, seed, device, threads,
    progress
        As for LESS (``tunesift.methods.less.LESS``): the warm-up (one checkpoint per epoch),
        the LoRA adapters whose gradients are the features, the projection's dimension.

    Attributes
    ----------
    weights_ : ndarray of shape (n_checkpoints, n_params), float32
        The adapter weights at every checkpoint (model by model, epoch by epoch).
    checkpoint_models_ : ndarray of shape (n_checkpoints,)
        The model each checkpoint belongs to.
    checkpoint_steps_ : tuple of int
        The update of its model's warm-up after which each checkpoint was kept.
    model_seeds_ : ndarray of shape (n_models,)
        Each model's seed (its warm-up sample, batches, LoRA initialization; TinyLM's weights).
    directions_ : ndarray of shape (n_checkpoints, projection_dim), float64
        Per checkpoint, (Φᵀ Φ + λ I)⁻¹ times the target's task-averaged mean feature: a row's
        τ_c is its feature's inner product with it.
    ridges_ : ndarray of shape (n_checkpoints,)
        The absolute λ of each checkpoint's kernel.
    pool_scores_ : ndarray of shape (n_fit,)
        The score of every row ``fit`` saw.
    digests_ : list of bytes
        A digest of each fitted row's text, in row order (how ``score`` recognizes a row).
    target_tasks_ : ndarray of shape (n_tasks,)
        The target task codes (the target rows' sources; one task 0 without sources).
    warmup_rows_ : ndarray of shape (n_models, n_warmup)
        The pool rows each model's warm-up trained on.
    warmup_losses_ : ndarray of shape (n_models, n_steps)
        Each warm-up's loss at every step.
    n_params_ : int
        LoRA parameters (the length of a gradient before projection).
    """

    name = "dsdm"
    #: the parameters the base class does not declare (``__init__`` keeps them all)
    n_models: int
    lambda_reg: float
    # built on first use in this process, never saved (the fitted state rebuilds them)
    _model_lm: Any = None
    _model_index: int | None = None
    _proj_index: int | None = None

    def __init__(
        self,
        n_models: int = 1,
        lambda_reg: float = 0.01,
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
        self._keep_init_args(locals())

    def _check_params(self) -> None:
        super()._check_params()
        if not is_int(self.n_models) or self.n_models < 1:
            raise TunesiftError(
                f"n_models must be a positive integer, got {self.n_models!r}", param="n_models"
            )
        if not is_real(self.lambda_reg) or not 0 <= self.lambda_reg < float("inf"):
            raise TunesiftError(
                f"lambda_reg must be a finite number >= 0, got {self.lambda_reg!r}",
                param="lambda_reg",
            )
        if not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise TunesiftError(f"seed must be an integer >= 0, got {self.seed!r}", param="seed")

    # --- the ensemble's models ------------------------------------------------------------------

    def _model_seed(self, m: int) -> int:
        """Model 0 takes the run's seed (its warm-up is LESS's); the others derived ones."""
        if m == 0:
            return int(self.seed)
        return int(np.random.SeedSequence([int(self.seed), _MODEL_STREAM, m]).generate_state(1)[0])

    def _lm_for(self, m: int, seed: int, fresh: bool = False) -> Any:
        """Model m's LoRA-wrapped LM (TinyLM's weights come from its seed), built once."""
        if fresh or self._model_lm is None or self._model_index != m:
            self._model_lm = None  # free the previous one first (SmolLM2: 0.5 GB)
            self._model_lm = self._load_lm(seed)
            self._model_index = m
        return self._model_lm

    def _log_odds_features(
        self, lm: Any, rows: list[list[int]], k: int, weights: np.ndarray, desc: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n, d) float32 projected log-odds gradients of ``rows`` and their (n,) out-to-loss
        weights, at checkpoint ``k`` (adapter ``weights``; its own projector)."""
        from tqdm.auto import tqdm

        from tunesift.models.per_example_grads import load_flat_trainable, log_odds_gradients
        from tunesift.models.projection import Projector

        load_flat_trainable(lm.model, weights)
        if self._proj is None or self._proj_index != k or self._proj.n_params != len(weights):
            self._proj = None
            seed = int(self.seed) + _PROJ_STRIDE * k
            self._proj = Projector(len(weights), int(self.projection_dim), seed=seed)
            self._proj_index = k
        phi = np.zeros((len(rows), int(self.projection_dim)), dtype=np.float32)
        q = np.zeros(len(rows), dtype=np.float64)
        bar = tqdm(total=len(rows), desc=desc, disable=not self.progress, leave=False)
        for lo in range(0, len(rows), 32):
            g, w = log_odds_gradients(lm, rows[lo : lo + 32], self._device)
            phi[lo : lo + len(g)] = self._proj(g).numpy()
            q[lo : lo + len(g)] = w
            bar.update(len(g))
        bar.close()
        return phi, q

    # --- fit ----------------------------------------------------------------------------------

    def fit(self, pool: list[str], target: list[str]) -> DsDm:
        """Warm up every model; at each checkpoint take the pool's and the target's features,
        solve the kernel against the target's mean feature and score the pool rows."""
        from tunesift.models.seeds import run_scope

        self._check_params()
        if not pool:
            raise TunesiftError("the pool is empty: DsDm needs pool texts", param="pool")
        if not target:
            raise TunesiftError("the target is empty: DsDm needs target texts", param="target")
        codes = self._target_task_codes(len(target))
        tasks = np.unique(codes)
        seeds = [self._model_seed(m) for m in range(int(self.n_models))]
        weights: list[np.ndarray] = []
        models: list[int] = []
        steps: list[int] = []
        directions: list[np.ndarray] = []
        ridges: list[float] = []
        warm_rows: list[np.ndarray] = []
        warm_losses: list[np.ndarray] = []
        tau = np.zeros(len(pool), dtype=np.float64)
        q_sum = np.zeros(len(pool), dtype=np.float64)
        for m, seed in enumerate(seeds):
            # a refit warms up from the base model again, with the current parameters
            lm = self._lm_for(m, seed, fresh=True)
            pool_rows = [lm.encode(t) for t in pool]
            target_rows = [lm.encode(t) for t in target]
            rows = self._warmup_sample(len(pool), seed)
            with run_scope(self.threads, self._device):
                checkpoints, losses = self._run_warmup(lm, [pool_rows[i] for i in rows], seed)
                for c in checkpoints:
                    k = len(weights)
                    phi, q = self._log_odds_features(
                        lm, pool_rows, k, c.weights, f"pool gradients {k + 1}"
                    )
                    g, _ = self._log_odds_features(
                        lm, target_rows, k, c.weights, f"target gradients {k + 1}"
                    )
                    v, ridge = datamodel_direction(
                        phi, target_direction(g, codes, tasks), float(self.lambda_reg)
                    )
                    tau += phi.astype(np.float64) @ v
                    q_sum += q
                    weights.append(c.weights)
                    models.append(m)
                    steps.append(int(c.step))
                    directions.append(v)
                    ridges.append(ridge)
            warm_rows.append(rows.astype(np.int64))
            warm_losses.append(np.asarray(losses, dtype=np.float64))
        n_ckpt = len(weights)
        self.weights_ = np.stack(weights)
        self.checkpoint_models_ = np.asarray(models, dtype=np.int64)
        self.checkpoint_steps_ = tuple(steps)
        self.model_seeds_ = np.asarray(seeds, dtype=np.int64)
        self.directions_ = np.stack(directions)
        self.ridges_ = np.asarray(ridges, dtype=np.float64)
        self.pool_scores_ = (tau / n_ckpt) * (q_sum / n_ckpt)
        self.digests_ = [_digest(t) for t in pool]
        self.target_tasks_ = tasks
        self.warmup_rows_ = np.stack(warm_rows)
        self.warmup_losses_ = np.stack(warm_losses)
        self.n_params_ = int(self.weights_.shape[1])
        return self

    # --- score --------------------------------------------------------------------------------

    def score(self, pool: list[str]) -> np.ndarray:
        """s(i) = mean_c φ_c(i)ᵀ directions_[c] x mean_c Q_c(i): a fitted row's score from
        ``fit``, a new row's from its features at every checkpoint."""
        from tunesift.models.seeds import run_scope

        self.check_is_fitted()
        known: dict[bytes, int] = {}
        for i, d in enumerate(self.digests_):
            known.setdefault(d, i)
        keys = [_digest(t) for t in pool]
        out = np.array([self.pool_scores_[known[k]] if k in known else np.nan for k in keys])
        new = np.flatnonzero(np.isnan(out))
        if not len(new):
            return out.astype(np.float64)
        tau = np.zeros(len(new), dtype=np.float64)
        q_sum = np.zeros(len(new), dtype=np.float64)
        for m, seed in enumerate(self.model_seeds_.tolist()):
            lm = self._lm_for(m, int(seed))
            rows = [lm.encode(pool[i]) for i in new]
            with run_scope(self.threads, self._device):
                for k in np.flatnonzero(self.checkpoint_models_ == m).tolist():
                    phi, q = self._log_odds_features(
                        lm, rows, k, self.weights_[k], f"gradients {k + 1}"
                    )
                    tau += phi.astype(np.float64) @ self.directions_[k]
                    q_sum += q
        n_ckpt = len(self.weights_)
        out[new] = (tau / n_ckpt) * (q_sum / n_ckpt)
        return out

    def __getstate__(self) -> dict[str, Any]:
        # the LM and the projector are rebuilt where the method lands (an engine's worker)
        dropped = ("_model_lm", "_model_index", "_proj", "_proj_index")
        return {k: v for k, v in vars(self).items() if k not in dropped}

    def diagnostics(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.model,
            "projection_dim": self.projection_dim,
            "n_models": self.n_models,
            "lambda_reg": self.lambda_reg,
        }
        if self.is_fitted():
            d.update(
                lora_parameters=self.n_params_,
                warmup_rows=int(self.warmup_rows_.shape[1]),
                warmup_loss_first=[float(x[0]) for x in self.warmup_losses_],
                warmup_loss_last=[float(x[-1]) for x in self.warmup_losses_],
                checkpoints=int(len(self.weights_)),
                checkpoint_steps=list(self.checkpoint_steps_),
                ridges=[float(r) for r in self.ridges_],
                target_tasks=int(len(self.target_tasks_)),
                predicted_helpful_rows=int((self.pool_scores_ > 0).sum()),
            )
        return d


# --- the estimator, piece by piece (``fit`` chains them checkpoint by checkpoint) --------------


def target_direction(grads: np.ndarray, codes: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """(d,) float64: the mean over target tasks of each task's mean feature, (1/K) Σ_k mean_{z in
    T_k} φ(z) (the target loss is a mean; ``lm_task_mix`` averages its tasks' datamodels)."""
    codes = np.asarray(codes)
    g = np.asarray(grads, dtype=np.float64)
    return np.mean([g[codes == c].mean(axis=0) for c in tasks], axis=0)


def datamodel_direction(
    pool_grads: np.ndarray, target: np.ndarray, lambda_reg: float
) -> tuple[np.ndarray, float]:
    """(Φᵀ Φ + λ I)⁻¹ g and λ, with λ = ``lambda_reg`` x tr(Φᵀ Φ) / d (TRAK's ``get_x_xtx_inv``,
    with a relative ridge); λ = 0 takes the pseudo-inverse. A pool row's τ is φ(i) dotted with
    it: φ(z)ᵀ (Φᵀ Φ + λ I)⁻¹ φ(i), the kernel being symmetric."""
    phi = np.asarray(pool_grads, dtype=np.float64)
    g = np.asarray(target, dtype=np.float64)
    kernel = phi.T @ phi
    ridge = float(lambda_reg) * float(np.trace(kernel)) / kernel.shape[0]
    if ridge > 0:
        return np.linalg.solve(kernel + ridge * np.eye(len(kernel)), g), ridge
    return np.linalg.pinv(kernel, hermitian=True) @ g, 0.0


def dsdm_scores(
    pool_grads: Sequence[np.ndarray],
    target_grads: Sequence[np.ndarray],
    out_to_loss: Sequence[np.ndarray],
    lambda_reg: float,
    codes: np.ndarray | None = None,
) -> np.ndarray:
    """s(i) = mean_c [mean_tasks mean_z φ_c(z)ᵀ (Φ_cᵀ Φ_c + λ_c I)⁻¹ φ_c(i)] x mean_c Q_c(i):
    per checkpoint c, the pool's (n, d) features, the target's (t, d) and the pool's (n,)
    out-to-loss weights; ``codes`` the target rows' tasks (None: one task)."""
    n_target = len(target_grads[0])
    codes = np.zeros(n_target, dtype=np.int64) if codes is None else np.asarray(codes)
    tasks = np.unique(codes)
    tau = np.zeros(len(pool_grads[0]), dtype=np.float64)
    q_sum = np.zeros(len(pool_grads[0]), dtype=np.float64)
    for phi, g, q in zip(pool_grads, target_grads, out_to_loss, strict=True):
        v, _ = datamodel_direction(phi, target_direction(g, codes, tasks), lambda_reg)
        tau += np.asarray(phi, dtype=np.float64) @ v
        q_sum += np.asarray(q, dtype=np.float64)
    n_ckpt = len(pool_grads)
    return (tau / n_ckpt) * (q_sum / n_ckpt)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:16]
