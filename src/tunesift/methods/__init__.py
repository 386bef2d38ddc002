"""Selection methods, by name. Each lives in its own module; all follow ``Method``."""

from __future__ import annotations

from typing import Any

from tunesift.errors import TunesiftError
from tunesift.methods.base import Method, top_k
from tunesift.methods.gotd import GOTD

METHODS: dict[str, type[Method]] = {GOTD.name: GOTD}


def make_method(name: str, **params: Any) -> Method:
    """Instantiate a method by name with its hyper-parameters; unknown names/params are user errors."""
    try:
        cls = METHODS[name]
    except KeyError:
        raise TunesiftError(
            f"unknown method {name!r}; choose from {', '.join(sorted(METHODS))}"
        ) from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise TunesiftError(f"bad parameter for method {name!r}: {exc}") from None


__all__ = ["GOTD", "METHODS", "Method", "make_method", "top_k"]
