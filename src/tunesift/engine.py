"""Where the map steps run: in this process (``local``, the default) or as Ray tasks (``ray``).

tunesift has two map steps, both over independent shards: embedding text shards (the feature
store) and scoring pool shards (``Method.score``). Everything global (the method's fit, the
order, the budget) stays in the calling process. An engine only decides where ``fn(shared, item)``
runs for each item, and hands the results back **in the items' order**, so a run gives the same
selection on either engine: the same shards go through the same code.

``RayEngine`` connects to a running cluster (``address``, or ``RAY_ADDRESS``) or starts a local
one. ``shared`` (the fitted method, the featurizer) is put in the object store once; each worker
process unpickles it once and keeps it for the next tasks of the same map, so a sentence encoder
is loaded once per worker, not once per shard. At most ``max_in_flight`` tasks are pending (by
default twice the cluster's CPUs), which bounds the driver's memory on a pool of any size.
Every node needs tunesift installed (the same version) in the Python that Ray runs.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from tunesift.errors import TunesiftError

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

ENGINES = ("local", "ray")


class Engine(Protocol):
    """Runs ``fn(shared, item)`` for every item and yields the results in the items' order."""

    name: str

    @property
    def shard_rows(self) -> int | None:
        """Rows per scoring task, or None for the caller's default (``api.SCORE_SHARD_ROWS``)."""
        ...

    def map(
        self, fn: Callable[[Any, T], R], items: Iterable[T], *, shared: Any = None
    ) -> Iterator[R]: ...


class LocalEngine:
    """One item after the other, in this process (threads are the libraries' own: torch, BLAS)."""

    name = "local"
    shard_rows = None

    def map(
        self, fn: Callable[[Any, T], R], items: Iterable[T], *, shared: Any = None
    ) -> Iterator[R]:
        for item in items:
            yield fn(shared, item)

    def __repr__(self) -> str:
        return "LocalEngine()"


# Per worker process: the unpickled ``shared`` object of the map in progress, by object id.
_WORKER_SHARED: dict[str, Any] = {}


def _run_in_worker(fn: Callable[[Any, Any], Any], boxed_ref: list[Any], item: Any) -> Any:
    """The body of every Ray task. The ref comes boxed in a list, so Ray does not resolve it
    (and unpickle a fresh copy) for every task; the worker keeps one copy per map instead."""
    import ray

    ref = boxed_ref[0]
    key = ref.hex()
    if key not in _WORKER_SHARED:
        _WORKER_SHARED.clear()  # the previous map's state (a model, a fitted method) is done
        _WORKER_SHARED[key] = ray.get(ref)
    return fn(_WORKER_SHARED[key], item)


class RayEngine:
    """Map steps as Ray tasks on an existing cluster or a local one.

    Parameters
    ----------
    address : str, optional
        The cluster to join ("auto", "ray://host:10001", ...); default: ``RAY_ADDRESS`` when
        set, else a new local cluster on this machine's cores. Ignored when Ray is already
        initialized in this process.
    cpus_per_task, gpus_per_task : float
        Ray resources each task asks for. With ``gpus_per_task > 0`` a task sees its GPU and
        ``device="auto"`` uses it; with 0, Ray hides the GPUs from it.
    max_in_flight : int, optional
        Tasks pending at once (default: 2 x the cluster's CPUs / ``cpus_per_task``).
    shard_rows : int
        Pool rows per scoring task: small enough that a pool of a few hundred thousand rows gives
        every CPU work (the local default, 262,144, would give it one task). Scores do not depend
        on how the pool is cut (a test checks 37-row shards against one whole shard).
    init_kwargs : dict, optional
        Passed to ``ray.init`` when this engine starts Ray (e.g. ``num_cpus``).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        cpus_per_task: float = 1.0,
        gpus_per_task: float = 0.0,
        max_in_flight: int | None = None,
        shard_rows: int = 16_384,
        init_kwargs: dict[str, Any] | None = None,
    ):
        if cpus_per_task <= 0 or gpus_per_task < 0:
            raise TunesiftError(
                f"Ray task resources must be positive (cpus {cpus_per_task}, gpus {gpus_per_task})"
            )
        if max_in_flight is not None and max_in_flight < 1:
            raise TunesiftError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if shard_rows < 1:
            raise TunesiftError(f"shard_rows must be at least 1, got {shard_rows}")
        self.shard_rows = int(shard_rows)
        self.address = address
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task
        self.max_in_flight = max_in_flight
        self.init_kwargs = dict(init_kwargs or {})

    def __repr__(self) -> str:
        return f"RayEngine(address={self.address!r}, gpus_per_task={self.gpus_per_task})"

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise TunesiftError(
                "the ray engine needs Ray: pip install 'tunesift[ray]' (or pip install ray)"
            ) from None
        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS")
            kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            if address is None:  # a new local cluster: no dashboard to serve
                kwargs["include_dashboard"] = False
            kwargs.update(self.init_kwargs)
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise TunesiftError(
                    f"cannot start or join Ray ({address or 'local'}): {exc}"
                ) from None
            logger.info("ray: %s", ray.cluster_resources())
        return ray

    def window(self) -> int:
        if self.max_in_flight is not None:
            return self.max_in_flight
        cpus = float(self._ray().cluster_resources().get("CPU", 1.0))
        return max(2, int(2 * cpus / self.cpus_per_task))

    def map(
        self, fn: Callable[[Any, T], R], items: Iterable[T], *, shared: Any = None
    ) -> Iterator[R]:
        ray = self._ray()
        task = ray.remote(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task)(_run_in_worker)
        shared_ref = ray.put(shared)
        window = self.window()
        pending: deque[Any] = deque()
        try:
            for item in items:
                pending.append(task.remote(fn, [shared_ref], item))
                if len(pending) >= window:
                    yield self._get(ray, pending.popleft())
            while pending:
                yield self._get(ray, pending.popleft())
        finally:
            for ref in pending:  # an error or an early stop: the rest is not wanted
                ray.cancel(ref)

    @staticmethod
    def _get(ray: Any, ref: Any) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, TunesiftError):
                raise cause from None
            raise TunesiftError(f"a Ray task failed: {cause or exc}") from None
        except ray.exceptions.RayError as exc:  # a worker or node died, an object was lost
            raise TunesiftError(f"Ray lost a task: {exc}") from None


def get_engine(engine: str | Engine | None = "local", **options: Any) -> Engine:
    """An engine by name ("local" or "ray", with ``RayEngine``'s options), or the one given."""
    if engine is None or engine == "local":
        if options:
            raise TunesiftError(f"the local engine takes no options, got {', '.join(options)}")
        return LocalEngine()
    if engine == "ray":
        return RayEngine(**options)
    if isinstance(engine, str):
        raise TunesiftError(f"unknown engine {engine!r}: use {' or '.join(ENGINES)}")
    return engine
