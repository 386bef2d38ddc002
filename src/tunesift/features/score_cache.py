"""Where the score shards of a long scoring run are kept, and what keys them.

``api`` scores big pools shard by shard and keeps each finished shard in a ``ShardStore`` (see
``features/store.py``) under ``<cache>/scores/<key>``, so a killed run's rerun scores only the
shards it had not finished. The key hashes what the scores are a function of: the rows scored
(``data_fingerprint``) and the fitted method's name, hyper-parameters and state
(``method_identity``). Anything that cannot be fingerprinted is not cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.features.store import STORE_FORMAT


def data_fingerprint(x: Any) -> str | None:
    """A digest of the rows a method scores: the feature cache's own fingerprint (its folder key
    and shard checksums), else the bytes of an in-memory array or list of texts; None when
    ``x`` is neither (then nothing is cached for it)."""
    fp = getattr(x, "fingerprint", None)
    if isinstance(fp, str):
        return fp
    h = hashlib.sha256()
    if isinstance(x, np.memmap) and x.filename:
        # a memory-mapped file (user-given .npy features): its identity as a file, as the corpus
        # fingerprint does, not its bytes (hashing 15 GB of features took longer than scoring
        # them on a GPU)
        st = os.stat(x.filename)
        h.update(
            f"memmap {os.path.realpath(x.filename)}\0{st.st_size}\0{st.st_mtime_ns}\0"
            f"{x.offset}\0{x.dtype.str}\0{x.shape}\0{x.strides}".encode()
        )
        return h.hexdigest()
    if isinstance(x, np.ndarray):
        h.update(f"array {x.dtype.str} {x.shape}\0".encode())
        for start in range(0, len(x), 65536):
            h.update(np.ascontiguousarray(x[start : start + 65536]).tobytes())
        return h.hexdigest()
    if isinstance(x, list) and all(isinstance(t, str) for t in x):
        h.update(f"texts {len(x)}\0".encode())
        for t in x:
            h.update(t.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
        return h.hexdigest()
    return None


#: fields of a fitted state that measure the run, not what it computed (wall time)
_VOLATILE_FIELDS = ("seconds",)


def _digest_value(h: Any, value: Any) -> bool:
    """Feed ``value`` into ``h`` unambiguously; False when it holds something we cannot hash."""
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, bytes):
        h.update(f"bytes:{len(value)}:".encode() + value)
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            return False
        h.update(f"ndarray:{value.dtype.str}:{value.shape}:".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__}:{len(value)}[".encode())
        if not all(_digest_value(h, v) for v in value):
            return False
        h.update(b"]")
    elif isinstance(value, dict):
        h.update(f"dict:{len(value)}{{".encode())
        for k in sorted(value, key=repr):
            if not (_digest_value(h, k) and _digest_value(h, value[k])):
                return False
        h.update(b"}")
    elif hasattr(value, "get_params"):  # a nested method (CCS scores with an inner one)
        return _digest_value(h, method_identity(value))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):  # a solver's result
        fields = {
            f.name: getattr(value, f.name)
            for f in dataclasses.fields(value)
            if f.name not in _VOLATILE_FIELDS
        }
        h.update(f"{type(value).__name__}:".encode())
        return _digest_value(h, fields)
    else:
        return False
    return True


#: hyper-parameters that change how a method reports progress, never its scores
_COSMETIC_PARAMS = ("progress", "show_progress")


def method_identity(method: Any) -> dict[str, Any] | None:
    """Name, hyper-parameters and fitted state (the trailing-underscore attributes, as the
    Method contract keeps them) of a fitted method; what its scores are a function of."""
    params = {k: v for k, v in method.get_params().items() if k not in _COSMETIC_PARAMS}
    state = {k: v for k, v in vars(method).items() if k.endswith("_") and not k.startswith("_")}
    h = hashlib.sha256()
    if not (_digest_value(h, params) and _digest_value(h, state)):
        return None
    return {"method": type(method).__name__, "name": getattr(method, "name", ""),
            "digest": h.hexdigest()}  # fmt: skip


def score_cache_dir(cache_dir: Path, x: Any, method: Any, rows: int) -> Path | None:
    """Where the score shards of fitted ``method`` on rows ``x`` in ``rows``-row shards are kept:
    ``<cache>/scores/<key>``; None when ``x`` or the method's state cannot be fingerprinted."""
    data = data_fingerprint(x)
    ident = method_identity(method)
    if data is None or ident is None:
        return None
    key = hashlib.sha256(
        json.dumps(
            {"store": STORE_FORMAT, "data": data, "rows": rows, "n": len(x), **ident},
            sort_keys=True,
        ).encode()
    ).hexdigest()[:20]
    return Path(cache_dir) / "scores" / key
