"""Selection methods, by name. Each lives in its own module; all follow ``Method``.

The method modules load on first use of ``METHODS`` (or of a class name such as ``GOTD``), not
on ``import tunesift.methods``: GOT-D's solver imports torch (seconds), which ``tunesift --help``
and the commands that list the methods by name (``NAMES``) do not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunesift.errors import TunesiftError
from tunesift.methods.base import Method, PoolInfo, top_k

if TYPE_CHECKING:
    from tunesift.methods.ccs import CCS
    from tunesift.methods.color_filter import ColorFilter
    from tunesift.methods.d4 import D4
    from tunesift.methods.density import Density
    from tunesift.methods.dsdm import DsDm
    from tunesift.methods.dsir import DSIR
    from tunesift.methods.gotd import GOTD
    from tunesift.methods.kmq import KMQ
    from tunesift.methods.learnability import Learnability
    from tunesift.methods.less import LESS
    from tunesift.methods.random import Random, RandomBalanced
    from tunesift.methods.rds import RDS
    from tunesift.methods.s2l import S2L
    from tunesift.methods.tagcos import TAGCOS
    from tunesift.methods.zipfit import ZipFit

#: the method names, without importing a method (tests check they are ``METHODS``' keys)
NAMES = (
    "gotd", "dsir", "rds", "kmq", "d4", "ccs", "zipfit", "random", "random-balanced",
    "less", "tagcos", "density",
    "color-filter", "learnability", "s2l", "dsdm",
)  # fmt: skip
_CLASS_NAMES = (
    "GOTD", "DSIR", "RDS", "KMQ", "D4", "CCS", "ZipFit", "Random", "RandomBalanced",
    "LESS", "TAGCOS", "Density",
    "ColorFilter", "Learnability", "S2L", "DsDm",
)  # fmt: skip

METHODS: dict[str, type[Method]]  # set by __getattr__ on first use


def _load() -> dict[str, type[Method]]:
    from tunesift.methods.ccs import CCS
    from tunesift.methods.color_filter import ColorFilter
    from tunesift.methods.d4 import D4
    from tunesift.methods.density import Density
    from tunesift.methods.dsdm import DsDm
    from tunesift.methods.dsir import DSIR
    from tunesift.methods.gotd import GOTD
    from tunesift.methods.kmq import KMQ
    from tunesift.methods.learnability import Learnability
    from tunesift.methods.less import LESS
    from tunesift.methods.random import Random, RandomBalanced
    from tunesift.methods.rds import RDS
    from tunesift.methods.s2l import S2L
    from tunesift.methods.tagcos import TAGCOS
    from tunesift.methods.zipfit import ZipFit

    classes = (
        GOTD, DSIR, RDS, KMQ, D4, CCS, ZipFit, Random, RandomBalanced, LESS, TAGCOS, Density,
        ColorFilter, Learnability, S2L, DsDm,
    )  # fmt: skip
    globals().update({cls.__name__: cls for cls in classes})
    return {cls.name: cls for cls in classes}


def _methods() -> dict[str, type[Method]]:
    if "METHODS" not in globals():
        globals()["METHODS"] = _load()
    return globals()["METHODS"]


def __getattr__(name: str) -> Any:
    # PEP 562: called only for names not yet in the module, so this loads the methods once
    if name == "METHODS" or name in _CLASS_NAMES:
        _methods()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_method(name: str, **params: Any) -> Method:
    """Instantiate a method by name with its hyper-parameters; unknown names/params are user errors."""
    try:
        cls = _methods()[name]
    except KeyError:
        raise TunesiftError(
            f"unknown method {name!r}; choose from {', '.join(sorted(NAMES))}"
        ) from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise TunesiftError(f"bad parameter for method {name!r}: {exc}") from None


__all__ = [
    "CCS", "D4", "DSIR", "GOTD", "KMQ", "LESS", "METHODS", "NAMES", "RDS", "S2L", "TAGCOS",
    "ColorFilter", "Density", "DsDm", "Learnability", "Method", "PoolInfo", "Random",
    "RandomBalanced", "ZipFit", "make_method", "top_k",
]  # fmt: skip
