"""The feature cache: shards written atomically, so an interrupted run resumes where it stopped.

Layout: ``<cache>/features/<key>/shard-00000.npy ... manifest.json``, where ``key`` hashes the
featurizer id and the corpus fingerprint. Each shard holds exactly ``shard_size`` rows (the last
fewer) and is written to a temporary file then renamed, so a crash loses at most the shard being
embedded. The manifest is written last; with it present, a rerun only reads the shards.

``layout.json``, written before the first shard, pins the shard size of a partial run: a resume
with another ``shard_size`` would otherwise take an old shard that merely has the right row count
(rows 10-19 as the second shard of 20-row shards) for the wrong rows. A resume adopts the stored
size instead. Temporary files carry the process id, so two runs racing on one key never rename
each other's half-written file into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tunesift._version import __version__
from tunesift.engine import Engine, LocalEngine
from tunesift.errors import InputError, TunesiftError
from tunesift.features.base import Featurizer
from tunesift.features.matrix import FeatureMatrix

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LAYOUT = "layout.json"


class _Corpus(Protocol):
    def batches(self, batch_size: int = ...) -> Iterator[Any]: ...
    def fingerprint(self) -> str: ...


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tunesift``, else ``~/.cache/tunesift``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tunesift"


def cache_key(featurizer_id: str, fingerprint: str) -> str:
    """The cache folder name: any change to the featurizer id or the corpus gives a new folder."""
    return hashlib.sha256(f"{featurizer_id}\0{fingerprint}".encode()).hexdigest()[:20]


def _tmp_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = _tmp_path(path)
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


def _write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    tmp = _tmp_path(path)
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None when it is missing or unreadable (a torn write)."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _manifest_ok(root: Path, meta: dict[str, Any]) -> bool:
    """Every shard the manifest lists is there with its row count (reads only .npy headers)."""
    try:
        return all(_shard_ok(root / s["file"], int(s["rows"])) for s in meta["shards"])
    except (KeyError, TypeError, ValueError):
        return False


def _shard_ok(path: Path, rows: int) -> bool:
    if not path.exists():
        return False
    try:
        return np.load(path, mmap_mode="r").shape[0] == rows
    except (ValueError, OSError):
        return False


def _text_chunks(corpus: _Corpus, size: int) -> Iterator[list[str]]:
    """The corpus texts regrouped into chunks of exactly ``size`` (the last one fewer)."""
    pending: list[str] = []
    for batch in corpus.batches(min(size, 4096)):
        pending.extend(batch.texts)
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending


def _check(vecs: np.ndarray, n: int, featurizer: Featurizer) -> np.ndarray:
    vecs = np.asarray(vecs)
    if vecs.ndim != 2 or vecs.shape[0] != n:
        raise TunesiftError(f"featurizer {featurizer.id} returned shape {vecs.shape} for {n} texts")
    if not np.issubdtype(vecs.dtype, np.floating):
        raise TunesiftError(f"featurizer {featurizer.id} returned {vecs.dtype}, not floats")
    if not np.isfinite(vecs).all():
        raise TunesiftError(f"featurizer {featurizer.id} returned NaN or infinite values")
    return vecs.astype(np.float32, copy=False)


def _encode_shard(
    featurizer: Featurizer, texts: list[str], batch_size: int, bar: Any
) -> np.ndarray:
    """Encode a shard longest-first, in pieces, and return the rows in the shard's order.

    Sorting the whole shard by length means each batch pads to similar lengths (length-bucketed
    batching; sentence-transformers sorts only within one ``encode`` call), and encoding in
    pieces of a few batches lets the progress bar and its ETA move within the shard.
    """
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    # slow encoders: a few batches per call; fast ones (static, n-grams) say how much they want,
    # since a call has a fixed cost (model2vec: 4.4k docs/s in calls of 256, 11k in calls of 4,096)
    step = getattr(featurizer, "piece_size", None) or max(4 * batch_size, 256)
    out: np.ndarray | None = None
    for s in range(0, len(order), step):
        idx = order[s : s + step]
        vecs = _check(
            featurizer.encode([texts[i] for i in idx], batch_size=batch_size), len(idx), featurizer
        )
        if out is None:
            out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
        out[idx] = vecs
        if bar is not None:
            bar.update(len(idx))
    assert out is not None
    return out


def _encode_job(
    job: tuple[Featurizer, int, Any], item: tuple[int, list[str]]
) -> tuple[int, np.ndarray]:
    featurizer, batch_size, bar = job
    k, texts = item
    return k, _encode_shard(featurizer, texts, batch_size, bar)


def featurize(
    corpus: _Corpus,
    featurizer: Featurizer,
    *,
    cache_dir: Path,
    shard_size: int | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
    desc: str = "embedding",
    dtype: str = "float16",
    engine: Engine | None = None,
) -> FeatureMatrix | np.ndarray:
    """Features of every good record of ``corpus``, (n, dim) float32, from the cache when there.

    ``shard_size`` defaults to 4,096 rows, or the featurizer's ``piece_size`` when larger;
    ``batch_size`` to the featurizer's own ``batch_size`` (else 64).
    Shards are stored as ``dtype`` (float16 by default: half the disk and page cache; features are
    computed and read as float32) and returned memory-mapped as a ``FeatureMatrix``.
    ``engine`` embeds the missing shards (default: here, one after the other; ``RayEngine``: as
    Ray tasks). This process reads the corpus and writes every shard, so the cache, its resume
    and the shard layout are the same whichever engine computed them.
    """
    runner: Engine = engine if engine is not None else LocalEngine()
    if batch_size is None:
        batch_size = int(getattr(featurizer, "batch_size", 64))
    if dtype not in ("float16", "float32"):
        raise TunesiftError(f"feature dtype must be float16 or float32, got {dtype!r}")
    if shard_size is None:
        shard_size = max(4096, getattr(featurizer, "piece_size", None) or 0)
    key = cache_key(f"{featurizer.id}|{dtype}", corpus.fingerprint())
    root = Path(cache_dir) / "features" / key
    manifest = root / MANIFEST
    meta = _read_json(manifest)
    if meta is not None and _manifest_ok(root, meta):
        logger.info("features from cache %s (%d rows)", root, meta["n"])
        return _load(root, meta)
    if manifest.exists():
        logger.warning(
            "feature cache %s is incomplete or damaged: rebuilding what is missing", root
        )
        manifest.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    stored = (_read_json(root / LAYOUT) or {}).get("shard_size")
    if isinstance(stored, int) and stored > 0:
        if stored != shard_size:
            logger.info("resuming %s with its shard size %d (not %d)", root, stored, shard_size)
            shard_size = stored
    else:
        _write_json_atomic(root / LAYOUT, {"shard_size": shard_size, "dtype": dtype})
    total = None
    count = getattr(corpus, "count", None)
    if callable(count):
        total = count()
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit="doc", dynamic_ncols=True)
    shards: list[dict[str, Any]] = []

    def missing() -> Iterator[tuple[int, list[str]]]:
        # every shard is listed; those already on disk are skipped (a resume)
        for k, texts in enumerate(_text_chunks(corpus, shard_size)):
            shards.append({"file": f"shard-{k:05d}.npy", "rows": len(texts)})
            if _shard_ok(root / shards[-1]["file"], len(texts)):
                if bar is not None:
                    bar.update(len(texts))
            else:
                yield k, texts

    # in this process the bar moves within a shard; elsewhere, as each shard comes back
    local = isinstance(runner, LocalEngine)
    job = (featurizer, batch_size, bar if local else None)
    try:
        for k, vecs in runner.map(_encode_job, missing(), shared=job):
            _save_atomic(root / f"shard-{k:05d}.npy", vecs.astype(dtype, copy=False))
            if bar is not None and not local:
                bar.update(len(vecs))
    finally:
        if bar is not None:
            bar.close()
    dim = None
    for s in shards:
        path = root / s["file"]
        width = int(np.load(path, mmap_mode="r").shape[1])
        if dim is not None and width != dim:
            raise TunesiftError(
                f"featurizer {featurizer.id} gave {width}-d vectors after {dim}-d ones ({path})"
            )
        dim = width
    n = sum(s["rows"] for s in shards)
    meta = {
        "featurizer": featurizer.id,
        "fingerprint": corpus.fingerprint(),
        "n": n,
        "dim": dim if dim is not None else int(featurizer.dim),  # empty corpus: ask the model
        "dtype": dtype,
        "shard_size": shard_size,
        "shards": shards,
        "tunesift_version": __version__,
    }
    _write_json_atomic(manifest, meta)
    return _load(root, meta)


def _load(root: Path, meta: dict[str, Any]) -> FeatureMatrix | np.ndarray:
    if not meta["shards"]:
        return np.zeros((0, meta["dim"]), dtype=np.float32)
    return FeatureMatrix([np.load(root / s["file"], mmap_mode="r") for s in meta["shards"]])


def load_features_npy(path: Path) -> FeatureMatrix | np.ndarray:
    """User-given features: a 2-D float .npy, memory-mapped, read as float32."""
    if not path.exists():
        raise InputError("no such file or directory", path)
    if path.suffix.lower() != ".npy":
        raise InputError("features must be a .npy file", path)
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"not a readable .npy file ({exc})", path) from None
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"features must be a 2-D float array, got {x.dtype} {x.shape}", path)
    if x.dtype != np.float32:
        return FeatureMatrix([x])  # float16/float64 on disk: read as float32, chunk by chunk
    return x
