"""TAGCOS: a coreset of the pool's gradients, by k-means and orthogonal matching pursuit per cluster.

Zhang, Qin, Pi, Zhang, Pan, Zhang. "TAGCOS: Task-agnostic Gradient Clustered Coreset Selection for
Instruction Tuning Data" (2024). Official code: 2003pro/TAGCOS (built on LESS's: ``utils/mean_grad.py``,
``utils/sk_LESS.py``, ``utils/omp.py``).

1. **Gradient features** (Sec. 3.1): LESS's LoRA warm-up on a random share of the pool, then for
   every pool row the Adam-preconditioned gradient at each checkpoint, projected and
   unit-normalized (``tunesift.methods.less``); a row's feature is the checkpoints' sum weighted
   by their normalized mean learning rates, ``Σ_i η̄_i Γ̂(z, θ_i)`` (``mean_grad.py``, not
   renormalized).
2. **Clusters** (Sec. 3.2): k-means over the features (k-means++, ``n_clusters``, 100 in the
   paper), so each cluster holds rows whose training signals agree.
3. **Coreset per cluster** (Sec. 3.3, Alg. 1): orthogonal matching pursuit picks the rows whose
   non-negative combination best matches the cluster's centroid (its mean gradient):
   greedily the row of largest inner product with the residual, coefficients by ridge least
   squares ``(A_S A_Sᵀ + λ I) x = A_S b`` (λ = 1), a negative coefficient drops its row, until the
   residual is below ``tol`` relative to the centroid or the best row is already picked; then
   again on the rows not yet picked (``omp.py``'s ``while budget > 0`` loop).

The order: each cluster's rows in their OMP order (pick by pick, round by round), and the clusters
merged in proportion to their sizes: the j-th row of a cluster of n rows comes at (j + 1/2) / n, so
any budget takes from every cluster its share of the budget (the paper's per-cluster budget,
``int(0.05 n)`` in ``omp.py``), to within one row.

Kept from the official code: LESS's warm-up and Adam gradient features, the lr-weighted sum over
checkpoints, k-means on those features with its centroids as the OMP targets, positive OMP with
ridge λ = 1 and tol = 1e-4 (the first coefficient unregularized, as ``omp.py`` computes it), a
row being selected when its coefficient is non-zero, repeated rounds on the remaining rows.

Changed, and why:
- one order for every budget instead of a fixed 5% per cluster: a budget is met exactly, spread
  over the clusters in proportion to their sizes (``int(0.05 n)`` per cluster under-fills: the
  floors drop up to one row per cluster, and a cluster under 20 rows gives nothing).
- a round that selects nothing (possible when no row points towards the centroid) would loop
  forever in ``omp.py``; here the cluster's remaining rows follow by their inner product with
  the centroid.
- a round runs until it stops on its own, where ``omp.py`` caps it at the budget left: the two
  differ only when a later pick drops an earlier one (a negative coefficient).
- the warm-up checkpoints are LESS's (one per epoch, weighted by the epoch's mean rate); the
  official README stops the warm-up by hand at 30 steps and uses steps 10, 20, 30.
- CPU defaults as LESS's (SmolLM2-135M, LoRA r = 8, a 1,024-dimensional projection).
- TAGCOS is task-agnostic: the target is not used.

The whole selection runs in ``fit`` (the rows it is given: the runner gives the whole pool), as
clustering and matching pursuit are joint over the pool. ``score`` then gives every row seen in
``fit`` its place in that order (rows are recognized by a digest of their text; identical texts
share the earliest place), and a row never seen its gradient feature's inner product with its
nearest centroid, below every fitted row.

Cost: LESS's warm-up, then one forward and one backward pass per pool row and checkpoint, plus
k-means and OMP on the projected features (a round of p picks over a cluster of n rows costs
about p n d).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.methods.kmeans import assign, fit_kmeans
from tunesift.methods.less import LESS, is_int, is_real


class TAGCOS(LESS):
    """TAGCOS: k-means over gradient features, then OMP per cluster for a coreset.

    Parameters
    ----------
    n_clusters : int
        k of k-means (the paper: 100; at most the pool's size).
    omp_lambda : float
        Ridge term of OMP's least squares (the official 1).
    omp_tol : float
        OMP stops when the residual falls below this share of the centroid's norm (1e-4).
    model, warmup_fraction, epochs, lr, batch_size, warmup_ratio, lora_r, lora_alpha,
    lora_dropout, lora_target_modules, projection_dim, max_length, seed, device, threads,
    progress
        As for LESS (``tunesift.methods.less.LESS``): the warm-up and the gradient features.

    Attributes
    ----------
    weights_, exp_avg_, exp_avg_sq_ : ndarray of shape (n_checkpoints, n_params), float32
        The adapter weights and AdamW's moments at every checkpoint.
    checkpoint_weights_ : ndarray of shape (n_checkpoints,)
        Each epoch's mean learning rate, normalized to sum to 1.
    checkpoint_steps_ : tuple of int
        The update after which each checkpoint was kept.
    centroids_ : ndarray of shape (k, projection_dim), float32
        The k-means centroids of the gradient features (the OMP targets).
    labels_ : ndarray of shape (n_fit,)
        Each fitted row's cluster.
    order_ : ndarray of shape (n_fit,)
        The fitted rows, best first (OMP order per cluster, clusters merged by size).
    digests_ : list of bytes
        A digest of each fitted row's text, in row order (how ``score`` recognizes a row).
    omp_rounds_ : int
        OMP rounds over all clusters.
    warmup_rows_ : ndarray of shape (n_warmup,)
        The pool rows the warm-up trained on.
    warmup_losses_ : ndarray of shape (n_steps,)
        The warm-up's loss at every step.
    n_params_ : int
        LoRA parameters (the length of a gradient before projection).
    """

    name = "tagcos"
    #: the parameters the base class does not declare (``__init__`` keeps them all)
    n_clusters: int
    omp_lambda: float
    omp_tol: float

    def __init__(
        self,
        n_clusters: int = 100,
        omp_lambda: float = 1.0,
        omp_tol: float = 1e-4,
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
        if not is_int(self.n_clusters) or self.n_clusters < 1:
            raise TunesiftError(
                f"n_clusters must be a positive integer, got {self.n_clusters!r}",
                param="n_clusters",
            )
        if not is_real(self.omp_lambda) or self.omp_lambda < 0:
            raise TunesiftError(
                f"omp_lambda must be >= 0, got {self.omp_lambda!r}", param="omp_lambda"
            )
        if not is_real(self.omp_tol) or not self.omp_tol >= 0:
            raise TunesiftError(f"omp_tol must be >= 0, got {self.omp_tol!r}", param="omp_tol")

    def fit(self, pool: list[str], target: Any = None) -> TAGCOS:
        """Warm up, take every pool row's gradient feature, cluster them, order each cluster by
        OMP and merge the clusters by size."""
        self._check_params()
        self._warm_up(pool)
        x = self._gradient_features(pool)
        self.centroids_ = fit_kmeans(x, int(self.n_clusters), seed=int(self.seed))
        self.labels_, _ = assign(x, self.centroids_)
        clusters = []
        rounds = 0
        for c in range(len(self.centroids_)):
            members = np.flatnonzero(self.labels_ == c)
            picks, r = omp_order(
                x[members], self.centroids_[c], lam=float(self.omp_lambda), tol=float(self.omp_tol)
            )
            clusters.append(members[picks])
            rounds += r
        self.order_ = proportional_merge(clusters)
        self.omp_rounds_ = rounds
        self.digests_ = [_digest(t) for t in pool]
        return self

    def _gradient_features(self, texts: list[str]) -> np.ndarray:
        """Σ_i η̄_i (unit projected Adam gradient at checkpoint i), per text."""
        from tunesift.models.seeds import run_scope

        lm = self._scoring_lm()
        rows = [lm.encode(t) for t in texts]
        out = np.zeros((len(rows), int(self.projection_dim)), dtype=np.float64)
        with run_scope(self.threads, self._device):
            for k in range(len(self.weights_)):
                moments = (self.exp_avg_[k], self.exp_avg_sq_[k])
                g = self._features(rows, self.weights_[k], moments, f"pool gradients {k + 1}")
                out += self.checkpoint_weights_[k] * g
        return out.astype(np.float32)

    def score(self, pool: list[str]) -> np.ndarray:
        """A fitted row: its place from the end of the TAGCOS order (n_fit for the first); a row
        ``fit`` never saw: its feature's inner product with its nearest centroid, minus 2 (below
        every fitted row)."""
        self.check_is_fitted()
        n_fit = len(self.order_)
        place: dict[bytes, int] = {}
        for pos, row in enumerate(self.order_.tolist()):
            place.setdefault(self.digests_[row], pos)
        keys = [_digest(t) for t in pool]
        out = np.array([float(n_fit - place[k]) if k in place else math.nan for k in keys])
        new = np.flatnonzero(np.isnan(out))
        if len(new):
            x = self._gradient_features([pool[i] for i in new])
            labels, _ = assign(x, self.centroids_)
            out[new] = np.einsum("ij,ij->i", x, self.centroids_[labels]) - 2.0
        return out

    def diagnostics(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model, "projection_dim": self.projection_dim}
        if self.is_fitted():
            sizes = np.bincount(self.labels_, minlength=len(self.centroids_))
            d.update(
                lora_parameters=self.n_params_,
                warmup_rows=int(len(self.warmup_rows_)),
                warmup_loss_first=float(self.warmup_losses_[0]),
                warmup_loss_last=float(self.warmup_losses_[-1]),
                checkpoint_steps=list(self.checkpoint_steps_),
                checkpoint_weights=[float(w) for w in self.checkpoint_weights_],
                clusters=int(len(self.centroids_)),
                cluster_size_min=int(sizes.min()),
                cluster_size_max=int(sizes.max()),
                omp_rounds=int(self.omp_rounds_),
            )
        return d


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:16]


def omp(
    vectors: np.ndarray, target: np.ndarray, *, lam: float, tol: float
) -> tuple[list[int], np.ndarray]:
    """One run of positive orthogonal matching pursuit (TAGCOS's Alg. 1; Tropp 2004, with ridge).

    ``vectors`` (n, d) are the candidates, ``target`` (d,) the vector to match. Greedily the row
    of largest inner product with the residual joins S; the coefficients solve
    ``(A_S A_Sᵀ + lam I) x = A_S b`` (for the first row alone ``x = <a, r> / <a, a>``); while a
    coefficient is negative its row leaves S. Stops when ``|r| / |b| < tol``, when the best row is
    already in S, or after n picks. Returns S in the order picked and its coefficients.
    """
    a = np.asarray(vectors, dtype=np.float64)
    b = np.asarray(target, dtype=np.float64)
    norm_b = float(np.linalg.norm(b))
    picks: list[int] = []
    x = np.zeros(0)
    if norm_b == 0 or not len(a):
        return picks, x
    resid = b.copy()
    for _ in range(len(a)):
        if np.linalg.norm(resid) / norm_b < tol:
            break
        proj = a @ resid
        best = int(np.argmax(proj))
        if best in picks:
            break
        picks.append(best)
        if len(picks) == 1:
            x = np.array([proj[best] / (a[best] @ a[best])])
        else:
            x = _ridge(a[picks], b, lam)
            while len(picks) and x.min() < 0:
                del picks[int(np.argmin(x))]
                x = _ridge(a[picks], b, lam) if picks else np.zeros(0)
            if not picks:  # every pick dropped: nothing matches (omp.py breaks out here too)
                break
        resid = b - a[picks].T @ x
    return picks, x


def _ridge(rows: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    gram = rows @ rows.T + lam * np.eye(len(rows))
    return np.linalg.lstsq(gram, rows @ b, rcond=None)[0]


def omp_order(
    vectors: np.ndarray, target: np.ndarray, *, lam: float, tol: float
) -> tuple[np.ndarray, int]:
    """Every row of a cluster, in TAGCOS's order: OMP's selection (non-zero coefficients, in the
    order picked), then OMP again on the rows left, and so on (``omp.py``'s loop); when a round
    selects nothing, the rows left follow by their inner product with ``target``. Returns the
    order and the number of rounds."""
    left = np.arange(len(vectors))
    out: list[np.ndarray] = []
    rounds = 0
    while len(left):
        picks, x = omp(vectors[left], target, lam=lam, tol=tol)
        rounds += 1
        chosen = np.array([p for p, c in zip(picks, x, strict=True) if c != 0], dtype=np.int64)
        if not len(chosen):
            ip = np.asarray(vectors[left], dtype=np.float64) @ np.asarray(target, dtype=np.float64)
            out.append(left[np.argsort(-ip, kind="stable")])
            break
        out.append(left[chosen])
        left = np.delete(left, chosen)
    return (np.concatenate(out) if out else np.zeros(0, dtype=np.int64)), rounds


def proportional_merge(groups: list[np.ndarray]) -> np.ndarray:
    """The groups' rows merged so that any prefix takes from each group its share: the j-th row
    (0-based) of a group of n rows has key (j + 1/2) / n; ties go to the earlier group."""
    groups = [np.asarray(g, dtype=np.int64) for g in groups if len(g)]
    if not groups:
        return np.zeros(0, dtype=np.int64)
    keys = np.concatenate([(np.arange(len(g)) + 0.5) / len(g) for g in groups])
    group = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)])
    flat = np.concatenate(groups)
    return flat[np.lexsort((group, keys))]
