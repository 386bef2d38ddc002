"""Featurizers by name: ``minilm`` (default), ``static``, ``ngrams``, or a local model folder."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from tunesift.errors import InputError, TunesiftError
from tunesift.features.base import Featurizer

NAMES = ("minilm", "static", "ngrams")


def get_featurizer(
    name: str, *, cache_dir: Path, device: str = "auto", **params: Any
) -> Featurizer:
    """The featurizer called ``name``, built with ``params``; models load on first use.

    An existing path that is not a model folder goes to ``SentenceEncoder``, whose error names
    the path, rather than to "unknown featurizer", which would hide a typo in a folder name.
    ``params`` are the featurizer's keyword arguments (``featurizer_params`` of ``select``), e.g.
    ``backend="onnx"`` for a sentence encoder; a name it does not take is a one-line error.
    """
    if name == "ngrams":
        from tunesift.features.ngrams import HashedNgrams

        return HashedNgrams(**_checked(HashedNgrams, name, params))
    if name == "static":
        from tunesift.features.static import StaticEncoder

        return StaticEncoder(cache_dir, **_checked(StaticEncoder, name, params, "cache_dir"))
    if name == "minilm" or Path(name).exists():
        from tunesift.features.sentence import SentenceEncoder

        params = _checked(SentenceEncoder, name, params, "model", "device", "cache_dir")
        return SentenceEncoder(name, device=device, cache_dir=cache_dir, **params)
    raise InputError(
        f"unknown featurizer {name!r}: use {', '.join(NAMES)}, or the path of a local "
        "sentence-transformers model folder"
    )


def _checked(cls: type, name: str, params: dict[str, Any], *fixed: str) -> dict[str, Any]:
    """``params`` when ``cls`` takes every one of them (``fixed`` are set by the run, not here)."""
    takes = [p for p in inspect.signature(cls).parameters if p not in fixed]
    unknown = sorted(set(params) - set(takes))
    if unknown:
        raise TunesiftError(
            f"featurizer_params: the {name} featurizer has no parameter {unknown[0]!r} "
            f"(it takes {', '.join(takes) or 'none'})",
            param="featurizer_params",
        )
    return params
