"""The Method contract every selector follows: fit on (pool sample, target), score shards, order.

Data flows one way: a method is fitted on the target and (a sample of) the pool, scores any shard
of the pool independently (the map step that scales out), and turns the scores into a *priority
order*: every pool row, best first. The budget (documents or tokens) and per-source caps are
applied afterwards, by ``tunesift.methods.budget.fill``, identically for every method, by walking
that order. Orders whose rule is not a plain sort (round-robin across target queries, per-cluster
quotas, strata, sources) are built so that any prefix is the method's selection at that size.

Like scikit-learn's estimators, a method's hyper-parameters are the parameters of its
``__init__`` (``get_params``/``set_params`` read the signature), its fitted state lives in
trailing-underscore attributes (listed under "Attributes" in each class docstring), it refuses
to score, order or save before ``fit`` (``NotFittedError``), and ``save``/``load`` write and read
that state (one ``.npz``: arrays, plus the parameters and the rest of the state as JSON; no
pickle), so a fit can be reused to score new shards.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np

from tunesift.errors import InputError, NotFittedError, TunesiftError
from tunesift.methods.budget import Budget, fill
from tunesift.outputs import write_bytes_atomic

#: What ``fit``/``score`` receive: feature rows (an (n, d) float array) or raw texts (list[str]).
Inputs = Literal["features", "texts", "none"]


@dataclass
class PoolInfo:
    """Per-row facts about the whole pool that some ordering rules need, beyond the scores.

    ``sources`` are integer codes into ``source_names`` (None when the pool has no records,
    e.g. features given as a bare .npy); ``features`` is the pool's feature matrix when the
    method works on features; ``columns`` holds numeric record fields a method asked for by
    name (``Method.record_columns``), e.g. kMQ's quality scores.
    """

    size: int
    sources: np.ndarray | None = None
    source_names: tuple[str, ...] = ()
    features: np.ndarray | None = None
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    #: target rows' source codes (several target tasks), or None
    target_sources: np.ndarray | None = None
    #: the budget's per-source cap, for orders whose rule depends on it (RDS+'s domain cap)
    max_per_source: int | None = None


M = TypeVar("M", bound="Method")


class Method(ABC):
    """A data-selection method, shaped like a scikit-learn estimator.

    Hyper-parameters go to ``__init__``; ``fit`` sees the target and the pool (or a sample of it)
    and stores a small state in trailing-underscore attributes; ``score`` maps any shard of the
    pool to one score per row, independently of the other shards, so scoring can run shard by
    shard, on threads or on a cluster; ``order`` turns the scores of the whole pool into the
    rows best first (default: sort by score); ``select`` takes the first ``budget`` of them
    (through ``budget.fill``, the one place a budget is checked and applied).

    The runner treats every method alike. Run-level settings (``RUN_SETTINGS``: the run's
    ``seed``, ``device`` and ``progress``) reach a method as defaults when its ``__init__``
    takes a parameter of that name; what a method adds to the result about the selection it
    made goes through ``describe_selection``.

    ``inputs`` says what ``fit`` and ``score`` receive: ``"features"`` (float arrays from the
    featurizer), ``"texts"`` (lists of raw strings, for methods with their own text features
    such as DSIR and ZIP-FIT) or ``"none"`` (random selection: ``fit`` and ``score`` get the
    row count only through ``PoolInfo``).
    """

    name: ClassVar[str]
    inputs: ClassVar[Inputs] = "features"
    #: True when the smallest scores are the best (GOT-D's most negative potentials).
    ascending: ClassVar[bool] = False
    #: Dataclasses that may appear in the fitted state (``save``/``load`` rebuild only these).
    state_classes: ClassVar[tuple[type, ...]] = ()

    @abstractmethod
    def fit(self, pool: Any, target: Any) -> Method: ...

    @abstractmethod
    def score(self, pool: Any) -> np.ndarray: ...

    def order(self, scores: np.ndarray, info: PoolInfo) -> np.ndarray:
        """Every pool row, best first. The default sorts by score (ties: lower index first)."""
        self.check_is_fitted()
        return top_k(scores, len(scores), ascending=self.ascending)

    def set_target_tasks(self, tasks: np.ndarray | None) -> None:
        """Each target row's task (its source code, or None without sources), given by the
        runner before ``fit``. Methods that score per target task (LESS's max over tasks) keep
        it; the others ignore it."""
        return None

    def record_columns(self) -> tuple[str, ...]:
        """Numeric record fields ``order`` needs in ``PoolInfo.columns`` (none by default)."""
        return ()

    def diagnostics(self) -> dict[str, Any]:
        """What the fit measured (convergence, costs...), for the provenance sidecar."""
        return {}

    def describe_selection(self, pool: Any, target: Any, indices: np.ndarray) -> dict[str, Any]:
        """What this method measures about a finished selection, added to its diagnostics.

        ``pool`` and ``target`` are what ``fit`` received for the whole pool (features or
        texts); ``indices`` the selected rows. Nothing by default; GOT-D reports the OT cost
        of the selection to the target next to the pool's.
        """
        return {}

    # --- parameters (scikit-learn's convention: the ``__init__`` signature is the list) -----

    @classmethod
    def _init_param_names(cls) -> tuple[str, ...]:
        sig = inspect.signature(cls.__init__)
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return tuple(
            p.name for p in sig.parameters.values() if p.name != "self" and p.kind in kinds
        )

    def _keep_init_args(self, args: dict[str, Any]) -> None:
        """Keep every ``__init__`` argument under its own name, unchanged (an ``__init__`` calls
        ``self._keep_init_args(locals())``): the signature stays the one list of parameters."""
        for name in self._init_param_names():
            setattr(self, name, args[name])

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """Each ``__init__`` parameter's default: the one place a method's defaults live."""
        sig = inspect.signature(cls.__init__)
        return {k: sig.parameters[k].default for k in cls._init_param_names()}

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters, as given to ``__init__`` (read from its signature)."""
        return {k: getattr(self, k) for k in self._init_param_names()}

    def set_params(self: M, **params: Any) -> M:
        """Change hyper-parameters by name; unknown names are an error. Refit afterwards."""
        names = self._init_param_names()
        for key, value in params.items():
            if key not in names:
                raise TunesiftError(
                    f"{type(self).__name__} has no parameter {key!r}; its parameters: "
                    f"{', '.join(names)}",
                    param=key,
                )
            setattr(self, key, value)
        return self

    # --- fitted state -------------------------------------------------------------------------

    def fitted_state(self) -> dict[str, Any]:
        """The fitted attributes: every public attribute whose name ends with an underscore."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def is_fitted(self) -> bool:
        return bool(self.fitted_state())

    def check_is_fitted(self) -> None:
        """Raise the one ``NotFittedError`` when ``fit`` has not run (scikit-learn's check)."""
        if not self.is_fitted():
            raise NotFittedError(
                f"{type(self).__name__} used before fit: call fit(pool, target) first"
            )

    def save(self, path: str | Path) -> Path:
        """Write the parameters and the fitted state to ``path`` (one ``.npz``), atomically.

        Arrays are stored as arrays; the parameters and the other fitted attributes as JSON in
        the same archive. No pickle: ``load`` rebuilds only plain values, arrays, nested methods
        and the dataclasses the method names in ``state_classes``.
        """
        self.check_is_fitted()
        arrays: dict[str, np.ndarray] = {}
        meta = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "state": _encode(self, arrays),
        }
        arrays[_META] = np.asarray(json.dumps(meta, default=_json_scalar))
        buf = io.BytesIO()
        savez: Any = np.savez  # its stubs read **arrays as its own keyword options
        savez(buf, **arrays)
        return write_bytes_atomic(path, buf.getvalue())

    @classmethod
    def load(cls: type[M], path: str | Path) -> M:
        """A fitted method from ``save``'s file; ``Method.load`` finds the class by name."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise InputError(f"not a saved tunesift method: {exc}", path, param="path") from None
        if _META not in arrays:
            raise InputError("not a saved tunesift method (no metadata)", path, param="path")
        meta = json.loads(str(arrays[_META][()]))
        if meta.get("format") != STATE_FORMAT or meta.get("version") != STATE_VERSION:
            raise InputError(
                f"unsupported saved-method format {meta.get('format')!r} "
                f"version {meta.get('version')!r}",
                path,
                param="path",
            )
        method = _decode(meta["state"], arrays, cls)
        if not isinstance(method, cls):
            raise InputError(
                f"holds a {type(method).__name__}, not a {cls.__name__}", path, param="path"
            )
        return method

    def select(self, scores: np.ndarray, budget: int, info: PoolInfo | None = None) -> np.ndarray:
        """Indices of the ``budget`` best rows, best first (the order, cut by ``budget.fill``).

        Without ``info`` the order is the plain sort by score.
        """
        if info is None:
            self.check_is_fitted()
            order = top_k(scores, len(scores), ascending=self.ascending)
        else:
            order = self.order(scores, info)
        return fill(order, Budget(docs=budget))


#: ``save``'s archive: what it is, and the layout version ``load`` understands.
STATE_FORMAT = "tunesift.method"
STATE_VERSION = 1
_META = "meta.json"


def method_class(name: str) -> type[Method]:
    """The Method subclass that declares ``name`` itself (any imported subclass; a subclass
    inheriting a name, e.g. a test's variant of GOT-D, is not the registered method)."""
    todo: list[type[Method]] = list(Method.__subclasses__())
    while todo:
        cls = todo.pop(0)
        if vars(cls).get("name") == name and not inspect.isabstract(cls):
            return cls
        todo.extend(cls.__subclasses__())
    raise TunesiftError(f"unknown method {name!r}")


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


def _encode(value: Any, arrays: dict[str, np.ndarray], owner: Method | None = None) -> Any:
    """A JSON tree for ``value``; arrays go to ``arrays`` under fresh keys."""
    if isinstance(value, Method):
        return {
            "__method__": value.name,
            "params": value.get_params(),
            "fitted": {k: _encode(v, arrays, value) for k, v in value.fitted_state().items()},
        }
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        if np.asarray(value).dtype == object:
            raise TypeError("object arrays cannot be saved without pickle")
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(value)
        return {"__array__" if isinstance(value, np.ndarray) else "__scalar__": key}
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, bytes) for v in value):
        key = f"a{len(arrays)}"
        arrays[key] = np.frombuffer(b"".join(value), dtype=np.uint8)
        arrays[key + "o"] = np.cumsum([0] + [len(v) for v in value], dtype=np.int64)
        return {"__bytes__": key, "tuple": isinstance(value, tuple)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays, owner) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays, owner) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v, arrays, owner) for k, v in value.items()}}
    if dataclasses.is_dataclass(value) and owner is not None:
        if type(value) not in owner.state_classes:
            raise TypeError(f"{type(value).__name__} is not in {owner.name}'s state_classes")
        return {
            "__dataclass__": type(value).__name__,
            "fields": {
                f.name: _encode(getattr(value, f.name), arrays, owner)
                for f in dataclasses.fields(value)
            },
        }
    raise TypeError(f"cannot save a fitted attribute of type {type(value).__name__}")


def _decode(node: Any, arrays: dict[str, np.ndarray], owner: type[Method] | None = None) -> Any:
    if isinstance(node, list):
        return [_decode(v, arrays, owner) for v in node]
    if not isinstance(node, dict):
        return node
    if "__method__" in node:
        cls = method_class(node["__method__"])
        method = cls(**node["params"])
        for k, v in node["fitted"].items():
            setattr(method, k, _decode(v, arrays, cls))
        return method
    if "__array__" in node:
        return arrays[node["__array__"]]
    if "__scalar__" in node:
        return arrays[node["__scalar__"]][()]
    if "__bytes__" in node:
        data, offsets = arrays[node["__bytes__"]].tobytes(), arrays[node["__bytes__"] + "o"]
        parts = [
            data[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
        ]
        return tuple(parts) if node["tuple"] else parts
    if "__tuple__" in node:
        return tuple(_decode(v, arrays, owner) for v in node["__tuple__"])
    if "__dict__" in node:
        return {k: _decode(v, arrays, owner) for k, v in node["__dict__"].items()}
    if "__dataclass__" in node:
        classes = {c.__name__: c for c in (owner.state_classes if owner else ())}
        dc = classes.get(node["__dataclass__"])
        if dc is None:
            raise TunesiftError(f"saved state holds an unknown class {node['__dataclass__']!r}")
        return dc(**{k: _decode(v, arrays, owner) for k, v in node["fields"].items()})
    raise TunesiftError(f"saved state holds an unknown node {sorted(node)!r}")


def top_k(scores: np.ndarray, k: int, *, ascending: bool) -> np.ndarray:
    """The k best indices, best first; ties go to the lower index, so the order is deterministic."""
    scores = np.asarray(scores, dtype=np.float64)
    if not 0 < k <= len(scores):
        raise TunesiftError(f"k {k} must be between 1 and the number of scores {len(scores)}")
    if np.isnan(scores).any():
        raise TunesiftError("scores contain NaN; the method failed to score some pool items")
    key = scores if ascending else -scores
    # A stable full sort keeps index order among ties; k-partition first when k is small.
    if k < len(key) // 8:
        part = np.argpartition(key, k - 1)[:k]
        kth = key[part].max()
        cand = np.flatnonzero(key <= kth)
        return cand[stable_argsort(key[cand])][:k]
    return stable_argsort(key)[:k]


def stable_argsort(key: np.ndarray) -> np.ndarray:
    """``np.argsort(key, kind="stable")``, the same indices, faster on large arrays.

    Keys that are float32 values (GOT-D's potentials, most scores) are sorted as one 64-bit
    integer each, (order-preserving bits of the key, row index), by numpy's SIMD sort: unique
    keys, so the result is the stable order, with ties (many, among millions of float32 values)
    broken by the lower index. Other keys: numpy's default argsort, then only runs of equal keys
    re-sorted by index. No NaN in ``key`` (``top_k`` refuses them).
    """
    n = len(key)
    if n < 65_536:
        return np.argsort(key, kind="stable")
    k32 = key.astype(np.float32)
    if n < 2**32 and np.array_equal(k32, key):
        k32 += np.float32(0.0)  # -0.0 -> 0.0: equal keys for argsort, so equal here too
        bits = k32.view(np.uint32).astype(np.uint64)
        neg = (bits & 0x80000000) != 0
        bits = np.where(neg, bits ^ 0xFFFFFFFF, bits | 0x80000000)  # order-preserving
        comp = (bits << np.uint64(32)) | np.arange(n, dtype=np.uint64)
        comp.sort()
        return (comp & np.uint64(0xFFFFFFFF)).astype(np.intp)
    idx = np.argsort(key)
    ks = key[idx]
    tie = ks[1:] == ks[:-1]
    if tie.any():
        in_run = np.zeros(n, dtype=bool)
        in_run[1:] |= tie
        in_run[:-1] |= tie
        pos = np.flatnonzero(in_run)
        run = np.cumsum(np.concatenate(([True], ~tie)))[pos]
        idx[pos] = idx[pos[np.lexsort((idx[pos], run))]]
    return idx


def gumbel_order(log_weights: np.ndarray, seed: int) -> np.ndarray:
    """Rows in the order of Gumbel top-k sampling: sampling without replacement ∝ exp(log w).

    Adding i.i.d. Gumbel(0, 1) noise to log-weights and sorting descending draws a sample
    without replacement proportional to the weights (Kool et al. 2019); every prefix is a
    sample of that size. Seeded, unlike DSIR's and kMQ's originals.
    """
    rng = np.random.default_rng(seed)
    key = np.asarray(log_weights, dtype=np.float64) + rng.gumbel(size=len(log_weights))
    return np.argsort(-key, kind="stable")


def interleave(groups: list[np.ndarray]) -> np.ndarray:
    """Round-robin over ordered groups: the 1st of each group, then the 2nd of each, and so on.

    Any prefix of length k gives every group min(its size, level) items for a common level, with
    the unfilled share of small groups going to the others: equal quotas with redistribution
    (kMQ), water-filling across strata (CCS), uniform over sources (balanced random). Groups
    come in the given order within a round.
    """
    groups = [np.asarray(g, dtype=np.int64) for g in groups if len(g)]
    if not groups:
        return np.empty(0, dtype=np.int64)
    sizes = np.array([len(g) for g in groups])
    flat = np.concatenate(groups)
    # position within its group, then group number: a lexsort gives the round-robin order
    within = np.concatenate([np.arange(s) for s in sizes])
    group = np.repeat(np.arange(len(groups)), sizes)
    return flat[np.lexsort((group, within))]
