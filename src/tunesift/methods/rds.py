"""RDS+: representation-based selection by cosine similarity, round-robin across target queries.

Ivison, Zhang, Wang, Groeneveld, Smith, Peters, Hajishirzi, Dasigi. "Large-Scale Data Selection
for Instruction Tuning" (2025), Sec. 3 (RDS+). Official code: hamishivi/automated-instruction-selection.

Every pool item is compared to every target query by the cosine of L2-normalized embeddings.
With a single target task, each query ranks the pool and the queries take turns: in each round,
every query adds its most similar item not taken yet, until the budget is met. With several
target tasks (the target's ``source``), a task's score for an item is the max over that task's
queries, and the tasks take turns the same way.

Differences from the original, deliberate:
- the embeddings are the featurizer's (MiniLM mean pooling by default), not the position-weighted
  mean of the fine-tuned model's last layer; any embedding can be plugged in with
  ``--pool-features``/``--target-features``.
- the original's scripts use "max" for three different aggregations; here it means one thing,
  the multi-task aggregation above, and round-robin is the rule inside a task.
- round-robin needs each query's ranking only as deep as the budget goes: we keep each query's
  top ``depth`` items (grown until the round-robin reaches the needed length) instead of the
  full pool x target similarity matrix. Past the round-robin prefix, the remaining rows follow by
  their best cosine to any query (they only matter when per-source caps skip rows).
- the per-row ``score`` reported is that best cosine (max over all queries).
"""

from __future__ import annotations

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.methods.base import Method, PoolInfo, top_k

_BLOCK = 16_384


def normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class RDS(Method):
    """RDS+ cosine selection with round-robin across target queries (or tasks).

    Parameters
    ----------
    aggregate : "round-robin" (the paper's best) or "max" (rank by best cosine to any query)
    seed : int
        Unused by the rule itself (it is deterministic); kept for a uniform interface.
    """

    name = "rds"
    _param_names = ("aggregate", "seed")

    def __init__(self, aggregate: str = "round-robin", seed: int = 0):
        self.aggregate = aggregate
        self.seed = seed

    def fit(self, pool: np.ndarray, target: np.ndarray) -> RDS:
        if self.aggregate not in ("round-robin", "max"):
            raise TunesiftError(f"aggregate must be 'round-robin' or 'max', got {self.aggregate!r}")
        self.target_ = normalize_rows(target)
        return self

    def score(self, pool: np.ndarray) -> np.ndarray:
        """Each row's best cosine to any target query."""
        out = np.empty(len(pool), dtype=np.float32)
        for s in range(0, len(pool), _BLOCK):
            sims = normalize_rows(pool[s : s + _BLOCK]) @ self.target_.T
            out[s : s + _BLOCK] = sims.max(axis=1)
        return out

    def _column_scores(self, block: np.ndarray, groups: list[np.ndarray] | None) -> np.ndarray:
        sims = normalize_rows(block) @ self.target_.T
        if groups is None:
            return sims
        return np.stack([sims[:, g].max(axis=1) for g in groups], axis=1)

    def _top_lists(self, x: np.ndarray, groups: list[np.ndarray] | None, depth: int) -> np.ndarray:
        """(columns, depth) pool rows, each column's best first; ties to the lower row."""
        n_cols = len(groups) if groups is not None else len(self.target_)
        best_v = np.full((0, n_cols), -np.inf, dtype=np.float32)
        best_i = np.zeros((0, n_cols), dtype=np.int64)
        for s in range(0, len(x), _BLOCK):
            v = self._column_scores(x[s : s + _BLOCK], groups)
            i = np.broadcast_to(np.arange(s, s + len(v))[:, None], v.shape)
            v = np.concatenate([best_v, v])
            i = np.concatenate([best_i, i])
            if len(v) > depth:
                part = np.argpartition(-v, depth - 1, axis=0)[:depth]
                v, i = np.take_along_axis(v, part, 0), np.take_along_axis(i, part, 0)
            best_v, best_i = v, i
        # sort each column by (-value, row)
        idx = np.lexsort((best_i, -best_v), axis=0)
        return np.take_along_axis(best_i, idx, 0).T

    def order(self, scores: np.ndarray, info: PoolInfo) -> np.ndarray:
        by_score = top_k(scores, len(scores), ascending=False)
        if self.aggregate == "max":
            return by_score
        if info.features is None:
            raise TunesiftError("rds needs the pool features to rank the pool per query")
        groups = None
        if info.target_sources is not None and len(np.unique(info.target_sources)) > 1:
            codes = np.asarray(info.target_sources)
            groups = [np.flatnonzero(codes == c) for c in np.unique(codes)]
        n_cols = len(groups) if groups is not None else len(self.target_)
        need = min(info.size, info.need or info.size)
        depth = min(info.size, max(16, 2 * -(-need // n_cols)))
        while True:
            lists = self._top_lists(info.features, groups, depth)
            prefix = round_robin(lists, need, exhaustive=depth >= info.size)
            if len(prefix) >= need or depth >= info.size:
                break
            depth = min(info.size, depth * 2)
        taken = np.zeros(info.size, dtype=bool)
        taken[prefix] = True
        return np.concatenate([prefix, by_score[~taken[by_score]]])


def round_robin(lists: np.ndarray, need: int, *, exhaustive: bool) -> np.ndarray:
    """Columns take turns adding their best row not taken yet, until ``need`` rows.

    ``lists`` is (columns, depth), each row best first. When a column runs out of its list and
    the lists are not exhaustive (the whole pool), its next best is unknown: stop there and let
    the caller deepen the lists.
    """
    n_cols, depth = lists.shape
    taken: set[int] = set()
    out: list[int] = []
    ptr = [0] * n_cols
    while len(out) < need:
        progressed = False
        for c in range(n_cols):
            row = lists[c]
            p = ptr[c]
            while p < depth and int(row[p]) in taken:
                p += 1
            ptr[c] = p
            if p == depth:
                if not exhaustive:
                    return np.asarray(out, dtype=np.int64)
                continue
            taken.add(int(row[p]))
            out.append(int(row[p]))
            ptr[c] = p + 1
            progressed = True
            if len(out) >= need:
                break
        if not progressed:
            break
    return np.asarray(out, dtype=np.int64)
