"""Selection methods, by name. Each lives in its own module; all follow ``Method``."""

from __future__ import annotations

from typing import Any

from tunesift.errors import TunesiftError
from tunesift.methods.base import Method, PoolInfo, top_k
from tunesift.methods.ccs import CCS
from tunesift.methods.d4 import D4
from tunesift.methods.dsir import DSIR
from tunesift.methods.gotd import GOTD
from tunesift.methods.kmq import KMQ
from tunesift.methods.random import Random, RandomBalanced
from tunesift.methods.rds import RDS
from tunesift.methods.zipfit import ZipFit

METHODS: dict[str, type[Method]] = {
    cls.name: cls for cls in (GOTD, DSIR, RDS, KMQ, D4, CCS, ZipFit, Random, RandomBalanced)
}


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


__all__ = ["METHODS", "Method", "PoolInfo", "make_method", "top_k"]
