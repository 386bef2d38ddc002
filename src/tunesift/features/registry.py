"""Featurizers by name: ``minilm`` (default), ``static``, ``ngrams``, or a local model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesift.errors import InputError
from tunesift.features.base import Featurizer

NAMES = ("minilm", "static", "ngrams")


def get_featurizer(
    name: str, *, cache_dir: Path, device: str = "auto", **params: Any
) -> Featurizer:
    """The featurizer called ``name``, built with ``params``; models load on first use.

    An existing path that is not a model folder goes to ``SentenceEncoder``, whose error names
    the path, rather than to "unknown featurizer", which would hide a typo in a folder name.
    """
    if name == "ngrams":
        from tunesift.features.ngrams import HashedNgrams

        return HashedNgrams(**params)
    if name == "static":
        from tunesift.features.static import StaticEncoder

        return StaticEncoder(cache_dir, **params)
    if name == "minilm" or Path(name).exists():
        from tunesift.features.sentence import SentenceEncoder

        return SentenceEncoder(name, device=device, **params)
    raise InputError(
        f"unknown featurizer {name!r}: use {', '.join(NAMES)}, or the path of a local "
        "sentence-transformers model folder"
    )
