"""Hashed unigram + bigram counts: the cheap, model-free featurizer (DSIR's feature space)."""

from __future__ import annotations

import re
import zlib

import numpy as np

_TOKEN = re.compile(r"\w+|[^\w\s]+")


def ngram_buckets(text: str, num_buckets: int) -> list[int]:
    """Bucket of every unigram and bigram of ``text`` (lowercased, word/punctuation tokens).

    The hash is CRC-32 of the UTF-8 n-gram, stable across processes and machines (Python's
    ``hash`` is salted per process, so it would break caching and determinism).
    """
    tokens = _TOKEN.findall(text.lower())
    grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]
    return [zlib.crc32(g.encode("utf-8")) % num_buckets for g in grams]


class HashedNgrams:
    """Counts of hashed unigrams and bigrams, L2-normalized by default.

    Tokens are ``\\w+`` or runs of punctuation, like nltk's WordPunct tokenizer (DSIR's choice);
    the DSIR method (issue 4) has its own sha256 mode for bit-compatibility with its package.
    """

    #: documents per encode call when featurizing a corpus (calls have a fixed cost)
    piece_size = 4096

    def __init__(self, num_buckets: int = 10_000, normalize: bool = True):
        if num_buckets < 1:
            raise ValueError("num_buckets must be positive")
        self.num_buckets = num_buckets
        self.normalize = normalize
        self.id = f"ngrams-crc32-b{num_buckets}-{'l2' if normalize else 'counts'}"

    @property
    def dim(self) -> int:
        return self.num_buckets

    def encode(
        self, texts: list[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.num_buckets), dtype=np.float32)
        for i, text in enumerate(texts):
            buckets = ngram_buckets(text, self.num_buckets)
            if buckets:
                np.add.at(out[i], buckets, 1.0)
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, norms, out=out, where=norms > 0)
        return out
