"""Budgets in documents or tokens, and per-source caps, applied the same way to every method.

A method ranks the whole pool (``Method.order``); ``fill`` walks that order and keeps rows until
the budget is spent, skipping rows whose source already holds ``max_per_source`` picks. Because
every method's order is built so that any prefix is its selection at that size, the same walk
gives each method its own rule under a token budget or a source cap, which no single method's
original code offers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tunesift.errors import InputError, TunesiftError

#: Budget field -> the parameter of ``select``/``compare`` that sets it: what errors name.
PARAMS = {"docs": "budget", "tokens": "budget_tokens", "max_per_source": "max_per_source"}


@dataclass(frozen=True)
class Budget:
    """How much to select: ``docs`` documents, or ``tokens`` tokens, optionally per-source capped.

    With a token budget, rows are taken in order while the running total stays within it: a row
    that would overflow is skipped and the walk goes on (so a long document never breaks the
    budget, and shorter ones later in the order can still use what is left).
    """

    docs: int | None = None
    tokens: int | None = None
    max_per_source: int | None = None

    def __post_init__(self) -> None:
        if (self.docs is None) == (self.tokens is None):
            raise TunesiftError(
                "budget (documents) or budget_tokens: give exactly one budget",
                param=("budget", "budget_tokens"),
            )
        for attr, param in PARAMS.items():
            v = getattr(self, attr)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise TunesiftError(f"{param} must be a positive integer, got {v!r}", param=param)

    def describe(self) -> str:
        s = f"{self.docs} documents" if self.docs is not None else f"{self.tokens} tokens"
        if self.max_per_source is not None:
            s += f", at most {self.max_per_source} per source"
        return s


def check_fits(budget: Budget, available: int, *, where: str | None = None) -> None:
    """The one check that the pool can give a document budget: ``available`` rows.

    ``fill`` calls it on the rows the per-source cap leaves; ``api.prepare`` calls it on the
    record count before any embedding, so a budget too large fails in seconds, not after the
    embedding. ``where`` (the pool's files) locates the error.
    """
    if budget.docs is None or budget.docs <= available:
        return
    cap = ""
    params: tuple[str, ...] = ("budget",)
    if budget.max_per_source is not None:
        cap, params = f" under max_per_source {budget.max_per_source}", ("budget", "max_per_source")
    raise InputError(
        f"budget {budget.docs} is more than the {available} documents the pool can give{cap}",
        where,
        param=params,
    )


def fill(
    order: np.ndarray,
    budget: Budget,
    *,
    lengths: np.ndarray | None = None,
    sources: np.ndarray | None = None,
) -> np.ndarray:
    """The rows of ``order`` (best first) that fit ``budget``, in that order.

    ``lengths`` (tokens per row) is required for a token budget; ``sources`` (integer codes per
    row) for a per-source cap. Raises (``check_fits``) when the pool cannot meet a document
    budget under the cap. This is the one place where a budget is checked and applied.
    """
    order = np.asarray(order, dtype=np.int64)
    if budget.tokens is not None and lengths is None:
        raise TunesiftError(
            "budget_tokens needs the records' texts to count their tokens", param="budget_tokens"
        )
    if budget.max_per_source is not None and sources is None:
        raise TunesiftError(
            "max_per_source needs records with sources, not bare features", param="max_per_source"
        )

    keep = np.ones(len(order), dtype=bool)
    if budget.max_per_source is not None:
        # rank of each row within its source along the order; beyond the cap, drop it
        src = np.asarray(sources)[order]
        rank = np.empty(len(order), dtype=np.int64)
        for code in np.unique(src):
            where = np.flatnonzero(src == code)
            rank[where] = np.arange(len(where))
        keep &= rank < budget.max_per_source
    candidates = order[keep]

    if budget.docs is not None:
        check_fits(budget, len(candidates))
        return candidates[: budget.docs]

    tokens = budget.tokens
    assert tokens is not None  # Budget requires docs or tokens
    ln = np.asarray(lengths, dtype=np.int64)[candidates]
    total = np.cumsum(ln)
    if total[-1] <= tokens if len(total) else True:
        return candidates
    # Prefix that fits, then skip-and-continue over the rest with what is left.
    n_prefix = int(np.searchsorted(total, tokens, side="right"))
    chosen = [candidates[:n_prefix]]
    left = tokens - (int(total[n_prefix - 1]) if n_prefix else 0)
    rest, rest_len = candidates[n_prefix:], ln[n_prefix:]
    extra = []
    for row, n in zip(rest.tolist(), rest_len.tolist(), strict=True):
        if n <= left:
            extra.append(row)
            left -= n
            if left == 0:
                break
    chosen.append(np.asarray(extra, dtype=np.int64))
    return np.concatenate(chosen)


def count_tokens(text: str) -> int:
    """Whitespace-separated words: the unit of ``budget_tokens`` (tokenizer-free, stable)."""
    return len(text.split())
