"""RDS+: representation-based selection by cosine similarity, round-robin across target queries.

Ivison, Zhang, Brahman, Koh, Dasigi. "Large-Scale Data Selection for Instruction Tuning" (2025),
Sec. 3 (RDS+). Official code: hamishivi/automated-instruction-selection.

Every pool item is compared to every target query by the cosine of L2-normalized embeddings.
With a single target task, each query ranks the pool and the queries take turns. The turn rule is
the official one (``minimal_multitask/get_top_influences.py``, the round-robin of its "max" and
"min" selection methods; ``get_top_aggregated_influences.py`` for tasks): in its turn a query pops
its next best row, and when that row is already taken the query LOSES ITS TURN (its pointer has
moved on; it does not pick its next untaken row). With several target tasks (the target's
``source``), a task's score for an item is the max over that task's queries, and the tasks take
turns the same way. With ``--max-per-source``, a query in its turn first pops the rows whose
source is full (the official domain cap, "pop until we get a domain we can use"), then takes one.

The order covers the whole pool, whatever the budget: without caps, each query pops exactly one
row per round, so a row is taken at its first pop, at the smallest (rank in a query's list,
query) over queries; sorting by that key is the round-robin over the whole pool, computed a
block of queries at a time (``RDS._first_turns``). So every prefix a budget walk can take, under
a token budget too, is the round-robin selection. With caps, the loop itself runs on per-query
lists deepened until every source is full or used up; the rows it never reaches (all in full
sources) follow by their best cosine.

Differences from the original, deliberate:
- the embeddings are the featurizer's (MiniLM mean pooling by default), not the position-weighted
  mean of the fine-tuned model's last layer; any embedding can be plugged in with
  ``--pool-features``/``--target-features``.
- the original's scripts use "max" for three different aggregations; here it means one thing,
  the multi-task aggregation above, and round-robin is the rule inside a task.
- the official "max" loop finishes its round past ``output_size`` and keeps an arbitrary subset
  (``list(set(...))``); we stop at the budget, as its "min" loop does, so a prefix is exact.
- a query whose list runs out is passed over (the official code raises).
- the per-row ``score`` reported is that best cosine (max over all queries).
"""

from __future__ import annotations

import numpy as np

from tunesift.errors import TunesiftError
from tunesift.features.vectors import normalize_rows
from tunesift.methods.base import Method, PoolInfo, top_k

_BLOCK = 16_384
#: pool x column scores ranked at a time by the whole-pool round-robin (about 200 MB of work)
_COLUMN_BLOCK_ENTRIES = 1 << 23
#: pass 1's depth: this many times a column's even share of the pool (at least _MIN_DEPTH)
_DEPTH_PER_SHARE = 64
_MIN_DEPTH = 64
_NO_TURN = np.iinfo(np.int64).max
_ROW_BITS = np.uint64(0xFFFFFFFF)


class RDS(Method):
    """RDS+ cosine selection with round-robin across target queries (or tasks).

    Parameters
    ----------
    aggregate : "round-robin" (the paper's best) or "max" (rank by best cosine to any query)
    seed : int
        Unused by the rule itself (it is deterministic); kept for a uniform interface.

    Attributes
    ----------
    target_ : ndarray of shape (M, d), float32
        The target queries, L2-normalized.
    """

    name = "rds"

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
        self.check_is_fitted()
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

    def _column_defs(self, info: PoolInfo) -> list[np.ndarray]:
        """The round-robin's columns: one per query, or one per target task (its queries)."""
        if info.target_sources is not None and len(np.unique(info.target_sources)) > 1:
            codes = np.asarray(info.target_sources)
            return [np.flatnonzero(codes == c) for c in np.unique(codes)]
        return [np.array([q]) for q in range(len(self.target_))]

    def _column_block_scores(self, x: np.ndarray, block: list[np.ndarray]) -> np.ndarray:
        """(len(block), N) float32: each column's score of every pool row (max over its queries)."""
        out = np.empty((len(block), len(x)), dtype=np.float32)
        flat = np.concatenate(block)
        t = self.target_[flat]
        starts = np.cumsum([0] + [len(q) for q in block[:-1]])
        for s in range(0, len(x), _BLOCK):
            sims = t @ normalize_rows(x[s : s + _BLOCK]).T  # (queries, rows): no transpose copy
            if len(flat) == len(block):
                out[:, s : s + sims.shape[1]] = sims
            else:
                out[:, s : s + sims.shape[1]] = np.maximum.reduceat(sims, starts, axis=0)
        return out

    def _first_turns(self, x: np.ndarray, cols: list[np.ndarray]) -> np.ndarray:
        """Each row's first turn in the uncapped round-robin, as ``round * n_cols + column``.

        Under the official rule every column pops exactly one row of its ranking per round, so a
        row is first popped, and taken, at the smallest (rank in a column, column) over columns:
        sorting the rows by that key IS the round-robin over the whole pool. Streaming, a block
        of columns at a time, never the dense pool x target matrix: pass 1 ranks each column's
        top ``depth`` rows exactly (every row it covers gets its key, since a row's best rank is
        below ``depth`` exactly when some column's top ``depth`` holds it); pass 2, only when
        some rows are in no column's top ``depth``, counts for each of those rows how many pool
        rows rank above it in each column. Ranks break score ties by the lower row, as the
        official ``sorted`` does.
        """
        n, n_cols = len(x), len(cols)
        best = np.full(n, _NO_TURN, dtype=np.int64)
        step = max(1, min(n_cols, _COLUMN_BLOCK_ENTRIES // max(n, 1)))
        depth = min(n, max(_MIN_DEPTH, _DEPTH_PER_SHARE * -(-n // n_cols)))
        for c0 in range(0, n_cols, step):
            scores = self._column_block_scores(x, cols[c0 : c0 + step])
            kth = np.partition(scores, n - depth, axis=1)[:, n - depth]
            for k in range(len(scores)):
                rows = np.flatnonzero(scores[k] >= kth[k])  # the top depth, and ties with it
                ranked = np.sort(_descending_keys(scores[k, rows], rows)) & _ROW_BITS
                ranked = ranked.astype(np.int64)
                turn = np.arange(len(ranked), dtype=np.int64) * n_cols + (c0 + k)
                best[ranked] = np.minimum(best[ranked], turn)
        rest = np.flatnonzero(best == _NO_TURN)
        if len(rest) == 0:
            return best
        all_rows = np.arange(n, dtype=np.int64)
        for c0 in range(0, n_cols, step):
            scores = self._column_block_scores(x, cols[c0 : c0 + step])
            for k in range(len(scores)):
                keys = _descending_keys(scores[k], all_rows)
                mine = keys[rest]
                keys.sort()  # a vectorised sort, then |rest| binary searches: rows ranked above
                rank = np.searchsorted(keys, mine).astype(np.int64)
                best[rest] = np.minimum(best[rest], rank * n_cols + (c0 + k))
        return best

    def order(self, scores: np.ndarray, info: PoolInfo) -> np.ndarray:
        self.check_is_fitted()
        by_score = top_k(scores, len(scores), ascending=False)
        if self.aggregate == "max":
            return by_score
        if info.features is None:
            raise TunesiftError("rds needs the pool features to rank the pool per query")
        cols = self._column_defs(info)
        if info.max_per_source is None or info.sources is None:
            return np.argsort(self._first_turns(info.features, cols), kind="stable")
        groups = None if all(len(c) == 1 for c in cols) else cols
        prefix = self._capped_round_robin(info, groups, len(cols))
        taken = np.zeros(info.size, dtype=bool)
        taken[prefix] = True
        return np.concatenate([prefix, by_score[~taken[by_score]]])

    def _capped_round_robin(
        self, info: PoolInfo, groups: list[np.ndarray] | None, n_cols: int
    ) -> np.ndarray:
        """The official loop with its per-domain cap, on per-column lists deepened as needed."""
        assert info.features is not None and info.sources is not None
        assert info.max_per_source is not None
        state = _RoundRobinState(n_cols, info.size, np.asarray(info.sources, dtype=np.int64))
        depth = min(info.size, 64)
        while True:
            lists = self._top_lists(info.features, groups, depth)
            if state.run(lists, info.max_per_source, exhaustive=depth >= info.size):
                return np.asarray(state.out, dtype=np.int64)
            depth = min(info.size, depth * 2)


class _RoundRobinState:
    """The official round-robin with per-source caps, resumable when the lists grow deeper.

    Transcribes ``get_top_influences.py`` (hamishivi/automated-instruction-selection, the "min"
    branch's domain handling): in its turn a column pops rows whose source is full (skipped,
    same turn), then pops one more; when that row is already taken the column loses its turn.
    """

    def __init__(self, n_cols: int, size: int, sources: np.ndarray):
        self.ptr = [0] * n_cols
        self.col = 0  # whose turn it is
        self.taken = np.zeros(size, dtype=bool)
        self.sources = sources
        self.counts = np.zeros(int(sources.max()) + 1 if len(sources) else 0, dtype=np.int64)
        self.left = np.bincount(sources, minlength=len(self.counts))  # rows not taken, by source
        self.out: list[int] = []

    def run(self, lists: np.ndarray, cap: int, *, exhaustive: bool) -> bool:
        """Advance; False when some column needs a deeper list (call again with one)."""
        n_cols, depth = lists.shape
        src, counts, taken = self.sources, self.counts, self.taken
        idle = 0  # consecutive turns with an exhausted column
        while True:
            if not ((counts < cap) & (self.left > 0)).any() or idle >= n_cols:
                return True  # every source is full or used up, or every column ran out
            c = self.col
            p = self.ptr[c]
            while p < depth and counts[src[lists[c, p]]] >= cap:
                p += 1
            self.ptr[c] = p
            if p == depth:
                if not exhaustive:
                    return False
                idle += 1
            else:
                idle = 0
                row = int(lists[c, p])
                self.ptr[c] = p + 1
                if not taken[row]:  # a taken row: the column loses its turn
                    taken[row] = True
                    self.out.append(row)
                    counts[src[row]] += 1
                    self.left[src[row]] -= 1
            self.col = (c + 1) % n_cols


def _descending_keys(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """uint64 keys that sort ascending as (value descending, row ascending): the float32's
    bits made order-preserving (and flipped) in the high word, the row in the low word."""
    u = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    high = u ^ ((np.uint32(1) - (u >> np.uint32(31))) * np.uint32(0x7FFFFFFF))
    keys = high.astype(np.uint64) << np.uint64(32)
    keys |= np.asarray(rows, dtype=np.uint64)
    return keys
