"""The feature cache: checksummed shards written atomically, so a killed run resumes where it stopped.

Layout: ``<cache>/features/<key>/shard-00000.npy ... manifest.json``, where ``key`` hashes the
store format, the featurizer id (name, model version, parameters), the storage dtype and the
corpus fingerprint (reading options, each file's path, size and mtime). Each shard holds exactly
``shard_size`` rows (the last fewer) and is written to a temporary file, fsynced and renamed
(``tunesift.outputs``' atomic writer; a failed write is an ``OutputError`` naming the file); a
sidecar ``shard-00000.npy.sum`` (rows, bytes, CRC-32) follows it the same way. A shard counts as
done only when its sidecar is there and its bytes match it, so a kill loses at most the shard in
flight, and a truncated, resized or bit-flipped shard is recomputed, never read. The manifest is
written last and repeats the featurizer id and fingerprint, which are checked on every read.

``layout.json``, written before the first shard, pins the shard size of a partial run: a resume
with another ``shard_size`` would otherwise take an old shard that merely has the right row count
(rows 10-19 as the second shard of 20-row shards) for the wrong rows. A resume adopts the stored
size instead.

Two processes sharing a cache folder: everything that writes into a key's folder holds an
exclusive ``fcntl`` lock on its ``.lock`` file, so the second waits, then finds the first one's
shards. The kernel drops the lock when its holder dies, even by ``kill -9``; temporary files
a killed holder left are removed by the next holder. (fcntl locks need a local or lock-aware file
system; on NFS without lockd, give each process its own cache folder.)

``ShardStore`` is the same machinery for any per-shard array: ``api`` keeps the score shards of
a long scoring run in it, keyed by the features and the fitted method
(``features/score_cache.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tunesift._version import __version__
from tunesift.engine import Engine, LocalEngine
from tunesift.errors import InputError, TunesiftError
from tunesift.features.base import Featurizer
from tunesift.features.matrix import FeatureMatrix
from tunesift.outputs import atomic_open, write_bytes_atomic

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LAYOUT = "layout.json"
LOCK = ".lock"
#: Part of every cache key: bump it when the on-disk layout changes, so no older cache is read.
#: 2: per-shard checksum sidecars, manifests checked against the featurizer and the corpus.
STORE_FORMAT = 2
#: Rows per feature shard when neither the caller nor the featurizer says (env:
#: ``TUNESIFT_FEATURE_SHARD_ROWS``, which wins over both: tests use it to get many shards).
DEFAULT_SHARD_ROWS = 4096
SHARD_ROWS_ENV = "TUNESIFT_FEATURE_SHARD_ROWS"


class _Corpus(Protocol):
    def batches(self, batch_size: int = ...) -> Iterator[Any]: ...
    def fingerprint(self) -> str: ...


def cache_key(featurizer_id: str, fingerprint: str) -> str:
    """The cache folder name: any change to the featurizer id or the corpus gives a new folder."""
    return hashlib.sha256(
        f"store{STORE_FORMAT}\0{featurizer_id}\0{fingerprint}".encode()
    ).hexdigest()[:20]


def env_rows(name: str) -> int | None:
    """A positive row count from the environment variable ``name``, or None when unset."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        rows = int(raw)
    except ValueError:
        rows = 0
    if rows < 1:
        raise TunesiftError(f"{name} must be a positive number of rows, got {raw!r}")
    return rows


# ---- atomic, checksummed files -------------------------------------------------------------------


def _write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    write_bytes_atomic(path, json.dumps(obj, indent=1).encode())


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None when it is missing or unreadable (a torn write)."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def file_crc32(path: Path) -> int:
    """CRC-32 of a file's bytes (1.5 GB/s: cheap next to reading the features to score them)."""
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``folder`` (its ``.lock`` file); wait for another holder."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.warning("waiting for another tunesift process writing %s", folder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        # whatever a killed holder left half-written is ours to clear now
        for tmp in folder.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)  # closing drops the lock


class ShardStore:
    """Numbered ``.npy`` shards in one folder, each with a checksum sidecar; see the module doc.

    Use it under ``folder_lock(root)``. ``valid(k, rows)`` is the sidecar's entry when shard ``k``
    is complete (the rows expected, the bytes and CRC-32 recorded), else None; ``put`` writes a
    shard then its sidecar, both atomically; ``computed`` and ``reused`` count this process's work,
    for the log line that says how much a resume saved.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.computed = 0
        self.reused = 0

    def path(self, k: int) -> Path:
        return self.root / f"shard-{k:05d}.npy"

    def valid(self, k: int, rows: int | None = None) -> dict[str, Any] | None:
        path = self.path(k)
        entry = _read_json(path.with_name(path.name + ".sum"))
        if entry is None:
            return None
        try:
            if rows is not None and int(entry["rows"]) != rows:
                return None
            if path.stat().st_size != int(entry["bytes"]):
                return None
            if file_crc32(path) != int(entry["crc32"]):
                logger.warning("%s fails its checksum: computing it again", path)
                return None
        except (OSError, KeyError, TypeError, ValueError):
            return None
        return {"file": path.name, **entry}

    def put(self, k: int, array: np.ndarray) -> dict[str, Any]:
        path = self.path(k)
        with atomic_open(path, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        entry = {"rows": int(len(array)), "bytes": path.stat().st_size, "crc32": file_crc32(path)}
        _write_json_atomic(path.with_name(path.name + ".sum"), entry)
        self.computed += 1
        return {"file": path.name, **entry}

    def load(self, k: int) -> np.ndarray:
        return np.load(self.path(k), mmap_mode="r", allow_pickle=False)

    def write_json(self, name: str, obj: dict[str, Any]) -> None:
        """A JSON file beside the shards, written atomically (e.g. what marks them complete)."""
        _write_json_atomic(self.root / name, obj)

    def read_json(self, name: str) -> dict[str, Any] | None:
        """That file's object, or None when it is missing or torn."""
        return _read_json(self.root / name)


def _manifest_ok(
    store: ShardStore, meta: dict[str, Any], featurizer_id: str, fingerprint: str
) -> bool:
    """The manifest names this featurizer and corpus, and every shard it lists checks out."""
    try:
        if meta.get("format") != STORE_FORMAT:
            return False
        written_for = f"{meta['featurizer']}|{meta['dtype']}"
        if written_for != featurizer_id or meta["fingerprint"] != fingerprint:
            logger.warning(
                "feature cache %s was written for another featurizer or input: not reused",
                store.root,
            )
            return False
        for k, s in enumerate(meta["shards"]):
            entry = store.valid(k, int(s["rows"]))
            if entry is None or entry["crc32"] != s["crc32"] or s["file"] != entry["file"]:
                return False
        return True
    except (KeyError, TypeError, ValueError):
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
    return vecs.astype(np.float32, copy=False)


def _encode_shard(
    featurizer: Featurizer, texts: list[str], batch_size: int, bar: Any, first_row: int = 0
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
    bad = first_nonfinite_row(out)  # before anything is cached (``first_row``: the shard's)
    if bad is not None:
        raise TunesiftError(
            f"featurizer {featurizer.id} returned NaN or infinite values for record row "
            f"{first_row + bad} (0-based, the first bad row)"
        )
    return out


def _encode_job(
    job: tuple[Featurizer, int, Any, int], item: tuple[int, list[str]]
) -> tuple[int, np.ndarray]:
    featurizer, batch_size, bar, shard_size = job
    k, texts = item
    return k, _encode_shard(featurizer, texts, batch_size, bar, first_row=k * shard_size)


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

    ``shard_size`` defaults to 4,096 rows, or the featurizer's ``piece_size`` when larger
    (``TUNESIFT_FEATURE_SHARD_ROWS`` overrides both); ``batch_size`` to the featurizer's own
    ``batch_size`` (else 64).
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
    shard_size = env_rows(SHARD_ROWS_ENV) or shard_size
    if shard_size is None:
        shard_size = max(DEFAULT_SHARD_ROWS, getattr(featurizer, "piece_size", None) or 0)
    featurizer_id = f"{featurizer.id}|{dtype}"
    fingerprint = corpus.fingerprint()
    root = Path(cache_dir) / "features" / cache_key(featurizer_id, fingerprint)
    store = ShardStore(root)
    manifest = root / MANIFEST
    meta = _read_json(manifest)
    # a complete cache is read without the lock: its files are only ever replaced whole
    if meta is not None and _manifest_ok(store, meta, featurizer_id, fingerprint):
        logger.info("features from cache %s (%d rows)", root, meta["n"])
        return _load(root, meta)
    with folder_lock(root):
        meta = _read_json(manifest)  # another process may have finished while we waited
        if meta is not None and _manifest_ok(store, meta, featurizer_id, fingerprint):
            logger.info("features from cache %s (%d rows)", root, meta["n"])
            return _load(root, meta)
        if manifest.exists():
            logger.warning(
                "feature cache %s is incomplete or damaged: rebuilding what is missing", root
            )
            manifest.unlink(missing_ok=True)
        meta = _build(
            corpus, featurizer, store, featurizer_id, fingerprint, shard_size, batch_size,
            show_progress, desc, dtype, runner,
        )  # fmt: skip
        return _load(root, meta)


def _build(
    corpus: _Corpus,
    featurizer: Featurizer,
    store: ShardStore,
    featurizer_id: str,
    fingerprint: str,
    shard_size: int,
    batch_size: int,
    show_progress: bool,
    desc: str,
    dtype: str,
    runner: Engine,
) -> dict[str, Any]:
    """Embed the shards not on disk yet, then write the manifest (holding the folder's lock)."""
    root = store.root
    layout = _read_json(root / LAYOUT) or {}
    stored = layout.get("shard_size")
    if (
        isinstance(stored, int)
        and stored > 0
        and layout.get("featurizer") == featurizer_id
        and layout.get("fingerprint") == fingerprint
    ):
        if stored != shard_size:
            logger.info("resuming %s with its shard size %d (not %d)", root, stored, shard_size)
            shard_size = stored
    else:
        for old in root.glob("shard-*"):  # another layout's or another input's: never reused
            old.unlink()
        _write_json_atomic(
            root / LAYOUT,
            {
                "shard_size": shard_size,
                "dtype": dtype,
                "featurizer": featurizer_id,
                "fingerprint": fingerprint,
            },
        )
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
        # every shard is listed; those already on disk and intact are skipped (a resume)
        for k, texts in enumerate(_text_chunks(corpus, shard_size)):
            entry = store.valid(k, len(texts))
            shards.append(entry or {"file": store.path(k).name, "rows": len(texts)})
            if entry is not None:
                store.reused += 1
                if bar is not None:
                    bar.update(len(texts))
            else:
                yield k, texts

    # in this process the bar moves within a shard; elsewhere, as each shard comes back
    local = isinstance(runner, LocalEngine)
    job = (featurizer, batch_size, bar if local else None, shard_size)
    try:
        for k, vecs in runner.map(_encode_job, missing(), shared=job):
            with np.errstate(over="ignore"):  # an overflow is refused just below, by row
                stored = vecs.astype(dtype, copy=False)
            bad = first_nonfinite_row(stored)
            if bad is not None:
                raise TunesiftError(
                    f"featurizer {featurizer.id} gave record row {k * shard_size + bad} (0-based, "
                    f"the first bad row) values beyond what {dtype} holds (65504); scale them down"
                )
            shards[k] = store.put(k, stored)
            if bar is not None and not local:
                bar.update(len(vecs))
    finally:
        if bar is not None:
            bar.close()
    logger.info(
        "features %s: %d shards computed, %d reused from an earlier run",
        root, store.computed, store.reused,
    )  # fmt: skip
    dim = None
    for k in range(len(shards)):
        width = int(store.load(k).shape[1])
        if dim is not None and width != dim:
            raise TunesiftError(
                f"featurizer {featurizer.id} gave {width}-d vectors after {dim}-d ones "
                f"({store.path(k)})"
            )
        dim = width
    n = sum(s["rows"] for s in shards)
    meta = {
        "format": STORE_FORMAT,
        "featurizer": featurizer.id,
        "fingerprint": fingerprint,
        "n": n,
        "dim": dim if dim is not None else int(featurizer.dim),  # empty corpus: ask the model
        "dtype": dtype,
        "shard_size": shard_size,
        "shards": shards,
        "tunesift_version": __version__,
    }
    _write_json_atomic(root / MANIFEST, meta)
    return meta


def _load(root: Path, meta: dict[str, Any]) -> FeatureMatrix | np.ndarray:
    if not meta["shards"]:
        return np.zeros((0, meta["dim"]), dtype=np.float32)
    x = FeatureMatrix(
        [np.load(root / s["file"], mmap_mode="r", allow_pickle=False) for s in meta["shards"]]
    )
    # what the score cache keys on: this featurizer on this input (the folder's key), and
    # these exact bytes (the shards' checksums)
    x.fingerprint = hashlib.sha256(  # type: ignore[attr-defined]
        json.dumps([root.name, meta["fingerprint"], [s["crc32"] for s in meta["shards"]]]).encode()
    ).hexdigest()
    # where these rows live, so a selection's sidecar can name it and a report read it back
    x.cache_folder = str(root)  # type: ignore[attr-defined]
    return x


def open_cached(
    folder: str | Path, fingerprint: str | None = None
) -> FeatureMatrix | np.ndarray | None:
    """The complete, checked features of one cache folder (as ``featurize`` left them), or None
    when the folder is missing, unfinished or damaged, or was written for another corpus
    ``fingerprint`` than the one given (its files changed since). Reads; never computes."""
    root = Path(folder)
    meta = _read_json(root / MANIFEST)
    if meta is None:
        return None
    try:
        feat_id = f"{meta['featurizer']}|{meta['dtype']}"
        if fingerprint is not None and meta["fingerprint"] != fingerprint:
            return None
        fingerprint = str(meta["fingerprint"])
    except (KeyError, TypeError):
        return None
    if not _manifest_ok(ShardStore(root), meta, feat_id, fingerprint):
        return None
    return _load(root, meta)


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
    out = x if x.dtype == np.float32 else FeatureMatrix([x])  # read as float32, chunk by chunk
    bad = first_nonfinite_row(out)
    if bad is not None:
        raise InputError(
            f"row {bad} (0-based, the first bad row) holds NaN or infinite values"
            + ("" if x.dtype == np.float32 else " once read as float32"),
            path,
        )
    return out


def first_nonfinite_row(x: Any, block_rows: int = 65_536) -> int | None:
    """The first row of ``x`` (an array or a ``FeatureMatrix``) holding a NaN or an infinity,
    read block by block as float32 (on up to 8 threads: numpy reads and sums without the GIL);
    None when every value is finite."""
    from concurrent.futures import ThreadPoolExecutor

    def read(s: int) -> np.ndarray:
        with np.errstate(over="ignore"):  # float64 beyond float32's range reads as inf: caught
            return np.asarray(x[s : s + block_rows], dtype=np.float32)

    def sums_finite(s: int) -> bool:
        # A NaN or an infinity makes its row's sum non-finite, so the row sums (one read, half
        # the time of an elementwise isfinite) clear most blocks; a non-finite sum can also be
        # an overflow of finite values, so the elementwise test decides
        with np.errstate(over="ignore", invalid="ignore"):
            return bool(np.isfinite(read(s).sum(axis=1)).all())

    starts = range(0, len(x), block_rows)
    workers = min(8, os.cpu_count() or 1, max(1, len(starts)))
    with ThreadPoolExecutor(workers) as pool:
        for s, ok in zip(starts, pool.map(sums_finite, starts), strict=True):
            if ok:
                continue
            bad = ~np.isfinite(read(s)).all(axis=1)
            if bad.any():
                pool.shutdown(cancel_futures=True)
                return s + int(np.argmax(bad))
    return None
