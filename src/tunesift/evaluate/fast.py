"""Fast mode: does the selection move an n-gram language model towards the target?

GOT-D's Lemma 1 (Kang et al., ICLR 2024, Sec. 3.1) models fine-tuning a model pre-trained on
P_pre with data D as moving it to the effective mixture ``lam * P_pre + (1 - lam) * P_D``. Fast
mode takes that view literally with count-based language models, which train in milliseconds:
the "pre-trained" model is an n-gram LM of a base corpus (the pool, by default), the
"pre-fine-tuned" one is ``lam * p_base + (1 - lam) * p_selection``, and the yardstick is the
perplexity of held-out target text. Lower is better; the no-pre-fine-tuning baseline is
``p_base`` alone.

The models, both over one fixed vocabulary (the base corpus's tokens plus ``<unk>``, so every
selection is scored over the same events):
- tokens: lowercased WordPunct tokens (``\\w+`` or runs of punctuation), ``<s>`` before each text;
- unigram: add-k, ``p1(w) = (c(w) + k) / (N + k |V|)``;
- bigram (``order=2``): Dirichlet-smoothed towards the unigram,
  ``p2(w | h) = (c(h, w) + mu p1(w)) / (c(h) + mu)``.
Perplexity is taken over the test tokens in the vocabulary: an out-of-vocabulary token would
otherwise reward small selections, whose add-k unigram gives ``<unk>`` more mass the fewer tokens
they hold. The out-of-vocabulary share is reported beside it.
Everything is counting: no randomness, so the same inputs give the same numbers exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from tunesift.errors import TunesiftError

_TOKEN = re.compile(r"\w+|[^\w\s]+")
BOS, UNK = 0, 1


@dataclass(frozen=True)
class FastConfig:
    """Hyper-parameters of fast mode; recorded with every result."""

    order: int = 2
    k: float = 0.1
    mu: float = 50.0
    lam: float = 0.5

    def check(self) -> None:
        if self.order not in (1, 2):
            raise TunesiftError(f"fast mode: order must be 1 or 2, got {self.order}")
        if self.k <= 0 or self.mu <= 0:
            raise TunesiftError("fast mode: k and mu must be positive")
        if not 0 <= self.lam < 1:
            raise TunesiftError(f"fast mode: lam must be in [0, 1), got {self.lam}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class Vocabulary:
    """Token ids: 0 is ``<s>``, 1 is ``<unk>``, then the base corpus's tokens in first-seen order."""

    def __init__(self, texts: Sequence[str]):
        self.ids: dict[str, int] = {"<s>": BOS, "<unk>": UNK}
        for text in texts:
            for tok in _TOKEN.findall(text.lower()):
                self.ids.setdefault(tok, len(self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(history, token) id pairs of every text, ``<s>`` opening each one."""
        hist, toks, _ = self.encode_owned(texts)
        return hist, toks

    def encode_owned(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``encode`` plus, for every pair, the index of the text it came from."""
        hist: list[int] = []
        toks: list[int] = []
        owner: list[int] = []
        get = self.ids.get
        for i, text in enumerate(texts):
            ids = [get(t, UNK) for t in _TOKEN.findall(text.lower())]
            if not ids:
                continue
            hist.append(BOS)
            hist.extend(ids[:-1])
            toks.extend(ids)
            owner.extend([i] * len(ids))
        return (
            np.asarray(hist, dtype=np.int64),
            np.asarray(toks, dtype=np.int64),
            np.asarray(owner, dtype=np.int64),
        )


class NgramLM:
    """Add-k unigram, Dirichlet-smoothed bigram LM over a fixed vocabulary; see the module doc."""

    def __init__(self, vocab: Vocabulary, texts: Sequence[str], cfg: FastConfig):
        self.vocab, self.cfg = vocab, cfg
        hist, toks = vocab.encode(texts)
        v = len(vocab)
        self.n_tokens = len(toks)
        self.unigram = (np.bincount(toks, minlength=v) + cfg.k) / (len(toks) + cfg.k * v)
        self.hist_counts = np.bincount(hist, minlength=v).astype(np.float64)
        keys, counts = np.unique(hist * v + toks, return_counts=True)
        self.pair_keys, self.pair_counts = keys, counts.astype(np.float64)

    def prob(self, hist: np.ndarray, toks: np.ndarray) -> np.ndarray:
        """p(token | history) for aligned arrays of ids."""
        p1 = self.unigram[toks]
        if self.cfg.order == 1:
            return p1
        keys = hist * len(self.vocab) + toks
        pos = np.searchsorted(self.pair_keys, keys)
        pos = np.minimum(pos, max(len(self.pair_keys) - 1, 0))
        found = self.pair_keys[pos] == keys if len(self.pair_keys) else np.zeros(len(keys), bool)
        c_pair = np.where(found, self.pair_counts[pos] if len(self.pair_keys) else 0.0, 0.0)
        return (c_pair + self.cfg.mu * p1) / (self.hist_counts[hist] + self.cfg.mu)


def perplexity(p: np.ndarray) -> float:
    return float(np.exp(-np.mean(np.log(p))))


@dataclass
class FastResult:
    perplexity: float
    perplexity_base: float
    n_selected: int
    selected_tokens: int
    test_tokens: int
    oov_rate: float
    config: dict[str, float]
    # per test text (in order): summed NLL (nats) of its in-vocabulary tokens and their count,
    # so paired intervals can recompute perplexity = exp(sum nll / sum tokens) on resamples
    item_nll: list[float] = field(default_factory=list)
    item_tokens: list[int] = field(default_factory=list)


def evaluate_fast(
    selected: Sequence[str] | None,
    base: Sequence[str],
    test: Sequence[str],
    cfg: FastConfig | None = None,
) -> FastResult:
    """Held-out target perplexity of ``lam * p_base + (1 - lam) * p_selected`` (Lemma 1).

    ``selected`` None or empty is the no-pre-fine-tuning baseline: ``p_base`` alone.
    """
    cfg = cfg or FastConfig()
    cfg.check()
    if not base:
        raise TunesiftError("fast mode needs a base corpus (the pool) to stand for pre-training")
    vocab = Vocabulary(base)
    base_lm = NgramLM(vocab, base, cfg)
    hist, toks, owner = vocab.encode_owned(test)
    known = toks != UNK
    oov = float(1.0 - known.mean()) if len(toks) else 0.0
    hist, toks, owner = hist[known], toks[known], owner[known]
    if len(toks) == 0:
        raise TunesiftError("fast mode: no target test token is in the base corpus's vocabulary")
    p_base = base_lm.prob(hist, toks)
    p = p_base
    n_sel_tokens = 0
    if selected:
        sel_lm = NgramLM(vocab, selected, cfg)
        n_sel_tokens = sel_lm.n_tokens
        p = cfg.lam * p_base + (1 - cfg.lam) * sel_lm.prob(hist, toks)
    return FastResult(
        perplexity=perplexity(p),
        perplexity_base=perplexity(p_base),
        n_selected=len(selected or ()),
        selected_tokens=n_sel_tokens,
        test_tokens=int(len(toks)),
        oov_rate=oov,
        config=cfg.to_dict(),
        item_nll=np.bincount(owner, weights=-np.log(p), minlength=len(test)).tolist(),
        item_tokens=np.bincount(owner, minlength=len(test)).astype(int).tolist(),
    )
