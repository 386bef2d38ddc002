"""``tunesift.select``: from files (or precomputed features) to a Selection, in one call.

corpus -> features (cached, resumable) -> method.fit / score / select -> Selection.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.corpus.corpus import Corpus
from tunesift.engine import Engine, get_engine
from tunesift.errors import InputError, TunesiftError
from tunesift.features.pca import PCA
from tunesift.features.registry import get_featurizer
from tunesift.features.score_cache import score_cache_dir
from tunesift.features.store import (
    ShardStore,
    env_rows,
    featurize,
    first_nonfinite_row,
    folder_lock,
    load_features_npy,
)
from tunesift.methods import Method, make_method
from tunesift.methods.base import PoolInfo
from tunesift.methods.budget import Budget, check_fits, count_tokens, fill
from tunesift.models.device import resolve_device
from tunesift.paths import default_cache_dir
from tunesift.selection import Selection, token_length_histogram

logger = logging.getLogger(__name__)

PathLike = str | Path
#: feature rows: an (n, d) array, or the cache's memory-mapped ``FeatureMatrix``, which reads like
#: one (slices and fancy indexing give arrays); duck-typed, so ``Any`` to the type checker
Features = Any
Source = PathLike | Sequence[PathLike] | Corpus | None


def _as_corpus(source: Source, **options: Any) -> Corpus | None:
    if source is None or isinstance(source, Corpus):
        return source
    paths = [source] if isinstance(source, (str, Path)) else list(source)
    if not paths:
        return None
    return Corpus(paths, **options)


def _features_for(
    corpus: Corpus | None,
    features_path: PathLike | None,
    role: str,
    featurizer: Any,
    cache_dir: Path,
    show_progress: bool,
    engine: Engine,
) -> Features:
    if features_path is not None:
        x = load_features_npy(Path(features_path))
        if corpus is not None:
            n = corpus.count()
            if n != len(x):
                raise InputError(
                    f"{len(x)} feature rows do not match the {n} {role} records "
                    f"in {', '.join(str(p) for p in corpus.paths)}",
                    features_path,
                )
        return x
    if corpus is None:
        raise TunesiftError(
            f"no {role} given: pass {role} files or {role}_features", param=f"{role}_features"
        )
    x = featurize(
        corpus,
        featurizer,
        cache_dir=cache_dir,
        show_progress=show_progress,
        desc=f"embedding {role}",
        engine=engine,
    )
    # featurize refuses non-finite vectors before caching them; this also catches values that
    # overflow the float16 cache (beyond +-65504) and a cache damaged since
    bad = first_nonfinite_row(x)
    if bad is not None:
        raise TunesiftError(
            f"featurizer {getattr(featurizer, 'id', featurizer)} gave {role} record row {bad} "
            "(0-based, the first bad row) NaN or infinite features as cached (float16 holds "
            "values up to 65504; scale the features down)"
        )
    return x


@dataclass
class Prepared:
    """Everything the methods read, computed once and shared (``select`` and ``compare``).

    Rows of ``x_pool``, ``pool_texts`` and the arrays of ``info`` are the pool's good records in
    corpus order (or the rows of ``pool_features`` when there are no records).
    """

    pool_corpus: Corpus | None
    target_corpus: Corpus | None
    info: PoolInfo
    x_pool: Features | None = None
    x_target: Features | None = None
    pool_texts: list[str] | None = None
    target_texts: list[str] | None = None
    lengths: np.ndarray | None = None
    featurizer_id: str | None = None
    #: how the featurizer ran where it has a choice (MiniLM's ``backend``), for the sidecar
    featurizer_backend: str | None = None
    pca: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: the feature cache folder; score shards of long scoring runs are kept there too (resume)
    cache_dir: Path | None = None

    @property
    def pool_size(self) -> int:
        return self.info.size

    @property
    def target_size(self) -> int:
        if self.x_target is not None:
            return len(self.x_target)
        return len(self.target_texts) if self.target_texts is not None else 0


@dataclass
class _Scan:
    texts: list[str] | None
    sources: np.ndarray
    source_names: tuple[str, ...]
    lengths: np.ndarray
    columns: dict[str, np.ndarray]


def _scan(corpus: Corpus, *, keep_texts: bool, columns: Sequence[str] = ()) -> _Scan:
    """One streaming pass: source codes, token counts, numeric columns, and texts if asked."""
    texts: list[str] | None = [] if keep_texts else None
    codes: list[int] = []
    names: dict[str, int] = {}
    lengths: list[int] = []
    cols: dict[str, list[float]] = {c: [] for c in columns}
    for batch in corpus.batches():
        for k, text in enumerate(batch.texts):
            codes.append(names.setdefault(batch.sources[k], len(names)))
            lengths.append(count_tokens(text))
            if texts is not None:
                texts.append(text)
            for c in columns:
                value = batch.fields[k].get(c)
                try:
                    cols[c].append(float(value))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    path, line = batch.location[k]
                    raise InputError(
                        f"field {c!r} must be a number in every record, got {value!r}",
                        f"{path}:{line}",
                    ) from None
    return _Scan(
        texts,
        np.asarray(codes, dtype=np.int32),
        tuple(names),
        np.asarray(lengths, dtype=np.int64),
        {c: np.asarray(v, dtype=np.float64) for c, v in cols.items()},
    )


def prepare(
    pool: Source = None,
    target: Source = None,
    *,
    needs: Sequence[str] = ("features",),
    columns: Sequence[str] = (),
    featurizer: str = "minilm",
    featurizer_params: dict[str, Any] | None = None,
    pool_features: PathLike | None = None,
    target_features: PathLike | None = None,
    text_field: str = "text",
    id_field: str | None = None,
    source_field: str | None = None,
    text_template: str | None = None,
    on_bad: str = "error",
    cache_dir: PathLike | None = None,
    device: str = "auto",
    seed: int = 0,
    pca_dim: int | None = None,
    show_progress: bool = False,
    max_budget: int | None = None,
    engine: str | Engine = "local",
) -> Prepared:
    """Read and featurize once what the methods to run will need.

    ``needs`` holds ``"features"`` and/or ``"texts"`` (see ``Method.inputs``); ``columns`` names
    numeric record fields some methods read (kMQ quality, CCS scores). ``max_budget``, the
    largest document budget to be asked, is checked against the pool before any embedding.
    ``featurizer_params`` go to the featurizer (e.g. ``{"backend": "onnx"}`` for MiniLM).
    ``engine`` runs the embedding of feature shards ("local", "ray", or an ``Engine``).
    """
    if (pool_features is None) != (target_features is None):
        raise TunesiftError(
            "pool_features and target_features go together: both spaces must match",
            param=("pool_features", "target_features"),
        )
    resolve_device(device)  # "cuda" without a GPU is a one-line error before any work
    eng = get_engine(engine)
    options = dict(
        text_field=text_field,
        id_field=id_field,
        source_field=source_field,
        text_template=text_template,
        on_bad=on_bad,
    )
    pool_corpus = _as_corpus(pool, **options)
    # a target's source matters only to multi-task RDS+: a target record without the pool's
    # --source-field falls back to its own `source`, else its file name (README), not an error
    target_corpus = _as_corpus(target, **options, source_fallback=True)
    if pool_corpus is None and pool_features is not None and "features" not in needs:
        # no records: the feature rows are the pool, and the only way to know its size
        needs = (*needs, "features")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    want_texts = "texts" in needs
    if want_texts and (pool_corpus is None or target_corpus is None):
        raise TunesiftError("this method reads texts: give pool and target files, not features")

    # Fail before the long embedding work on what can be checked from the records alone.
    t0 = time.perf_counter()
    pool_scan = target_scan = None
    if pool_corpus is not None:
        pool_scan = _scan(pool_corpus, keep_texts=want_texts, columns=columns)
        where = ", ".join(map(str, pool_corpus.paths))
        if len(pool_scan.lengths) == 0:
            raise InputError("the pool holds no records" + pool_corpus.report.skipped_note(), where)
        if max_budget is not None:
            check_fits(Budget(docs=max_budget), len(pool_scan.lengths), where=where)
    if target_corpus is not None:
        target_scan = _scan(target_corpus, keep_texts=want_texts)
        if len(target_scan.lengths) == 0:
            raise InputError(
                "the target holds no records" + target_corpus.report.skipped_note(),
                ", ".join(map(str, target_corpus.paths)),
            )
    t_read = time.perf_counter() - t0

    x_pool = x_target = None
    feat = None
    t0 = time.perf_counter()
    if "features" in needs:
        if pool_features is None:
            feat = get_featurizer(
                featurizer, cache_dir=cache, device=device, **(featurizer_params or {})
            )
        x_pool = _features_for(pool_corpus, pool_features, "pool", feat, cache, show_progress, eng)
        x_target = _features_for(
            target_corpus, target_features, "target", feat, cache, show_progress, eng
        )
        if len(x_target) == 0:
            raise InputError("the target is empty", target_features or "target")
        if x_pool.shape[1] != x_target.shape[1]:
            raise TunesiftError(
                f"pool features are {x_pool.shape[1]}-d but target features are "
                f"{x_target.shape[1]}-d"
            )
    t_features = time.perf_counter() - t0

    pca_info = None
    if pca_dim is not None and x_pool is not None and x_target is not None:
        pca = PCA.fit(x_pool, x_target, pca_dim, seed=seed)
        x_pool, x_target = pca.transform(x_pool), pca.transform(x_target)
        pca_info = {"dim": pca_dim, "explained_variance_ratio": pca.explained_variance_ratio}

    size = len(pool_scan.lengths) if pool_scan is not None else len(x_pool)  # type: ignore[arg-type]
    info = PoolInfo(
        size=size,
        sources=pool_scan.sources if pool_scan else None,
        source_names=pool_scan.source_names if pool_scan else (),
        features=x_pool,
        columns=pool_scan.columns if pool_scan else {},
        target_sources=target_scan.sources if target_scan else None,
    )
    feat_id: str | None
    if featurizer and feat is None and pool_features is not None:
        feat_id = "precomputed"
    else:
        feat_id = getattr(feat, "id", None)
    return Prepared(
        pool_corpus=pool_corpus,
        target_corpus=target_corpus,
        info=info,
        x_pool=x_pool,
        x_target=x_target,
        pool_texts=pool_scan.texts if pool_scan else None,
        target_texts=target_scan.texts if target_scan else None,
        lengths=pool_scan.lengths if pool_scan else None,
        featurizer_id=feat_id,
        featurizer_backend=getattr(feat, "backend", None),
        pca=pca_info,
        timings={"read": round(t_read, 3), "features": round(t_features, 3)},
        cache_dir=cache,
    )


#: Run-level settings a method receives as defaults when its ``__init__`` takes one by that name.
RUN_SETTINGS = ("seed", "device", "progress")
#: Run settings that change how a run looks, not what it selects: left out of the provenance.
_DISPLAY_ONLY = ("progress",)


def build_method(
    name: str, params: dict[str, Any], *, seed: int, device: str, progress: bool
) -> Method:
    """A method by name; the run's seed, device and progress are defaults for the methods whose
    ``__init__`` takes them (``RUN_SETTINGS``); ``params`` win."""
    from tunesift.methods import METHODS  # loads the methods (GOT-D's solver imports torch)

    params = dict(params)
    run = {"seed": seed, "device": device, "progress": progress}
    accepted = METHODS[name].default_params() if name in METHODS else {}
    for key in RUN_SETTINGS:
        if key in accepted:
            params.setdefault(key, run[key])
    return make_method(name, **params)


def run_method(
    prep: Prepared,
    method: str | Method,
    budget: Budget,
    *,
    seed: int = 0,
    device: str = "auto",
    show_progress: bool = False,
    engine: str | Engine = "local",
    **method_params: Any,
) -> Selection:
    """Fit, score (shard by shard, on ``engine``), order and fill the budget: one method on
    prepared inputs."""
    if isinstance(method, Method):
        m = method
    else:
        m = build_method(method, method_params, seed=seed, device=device, progress=show_progress)
    name = m.name
    fit_pool: Any
    fit_target: Any
    shards: Any
    if m.inputs == "features":
        if prep.x_pool is None:
            raise TunesiftError(f"{name} works on features, and none were prepared")
        fit_pool, fit_target, shards = prep.x_pool, prep.x_target, prep.x_pool
    elif m.inputs == "texts":
        if prep.pool_texts is None:
            raise TunesiftError(f"{name} reads texts: give pool and target files, not features")
        fit_pool, fit_target, shards = prep.pool_texts, prep.target_texts, prep.pool_texts
    else:
        fit_pool = fit_target = None
        shards = np.empty((prep.pool_size, 0), dtype=np.float32)
    for c in m.record_columns():
        if c not in prep.info.columns:
            raise TunesiftError(f"{name} needs the numeric record field {c!r}; it was not read")
    info = dataclasses.replace(prep.info, max_per_source=budget.max_per_source)

    t0 = time.perf_counter()
    m.set_target_tasks(prep.info.target_sources)
    m.fit(fit_pool, fit_target)
    eng = get_engine(engine)
    scores = _score_in_shards(m, shards, show_progress, eng, cache_dir=prep.cache_dir)
    if np.isnan(scores).any():
        raise TunesiftError(f"{name} returned NaN scores; the method failed on some pool items")
    order = m.order(scores, info)
    indices = fill(order, budget, lengths=prep.lengths, sources=info.sources)
    t_method = time.perf_counter() - t0

    diagnostics = m.diagnostics()
    diagnostics.update(m.describe_selection(shards, fit_target, indices))
    selected_tokens = int(prep.lengths[indices].sum()) if prep.lengths is not None else None
    return Selection(
        method=name,
        indices=np.asarray(indices, dtype=np.int64),
        scores=np.asarray(scores, dtype=np.float64),
        params={k: v for k, v in m.get_params().items() if k not in _DISPLAY_ONLY},
        diagnostics=diagnostics,
        seed=seed,
        pool_size=prep.pool_size,
        target_size=prep.target_size,
        pool=prep.pool_corpus,
        info={
            "featurizer": prep.featurizer_id if m.inputs == "features" else None,
            "featurizer_backend": prep.featurizer_backend if m.inputs == "features" else None,
            "pca": prep.pca,
            "budget": {
                "documents": budget.docs,
                "tokens": budget.tokens,
                "max_per_source": budget.max_per_source,
                "token_unit": "whitespace-separated words",
                "selected_documents": int(len(indices)),
                "selected_tokens": selected_tokens,
            },
            "inputs": {
                "pool": [str(p) for p in prep.pool_corpus.paths] if prep.pool_corpus else None,
                "target": [str(p) for p in prep.target_corpus.paths]
                if prep.target_corpus
                else None,
            },
            "bad_records": {
                "pool": prep.pool_corpus.report.summary() if prep.pool_corpus else None,
                "target": prep.target_corpus.report.summary() if prep.target_corpus else None,
            },
            "token_lengths": token_length_histogram(prep.lengths, indices)
            if prep.lengths is not None
            else None,
            # what a report reads back: how the records were read, where the features are cached
            "reading": prep.pool_corpus.reading_options() if prep.pool_corpus else None,
            "features_cache": {
                "pool": getattr(prep.x_pool, "cache_folder", None),
                "target": getattr(prep.x_target, "cache_folder", None),
            },
            "timings_s": {
                "read": prep.timings.get("read", 0.0),
                "features": prep.timings.get("features", 0.0),
                "method": round(t_method, 3),
            },
            "engine": eng.name,
        },
    )


def select(
    pool: Source = None,
    target: Source = None,
    budget: int | None = None,
    *,
    method: str = "gotd",
    budget_tokens: int | None = None,
    max_per_source: int | None = None,
    featurizer: str = "minilm",
    featurizer_params: dict[str, Any] | None = None,
    pool_features: PathLike | None = None,
    target_features: PathLike | None = None,
    text_field: str = "text",
    id_field: str | None = None,
    source_field: str | None = None,
    text_template: str | None = None,
    on_bad: str = "error",
    cache_dir: PathLike | None = None,
    device: str = "auto",
    seed: int = 0,
    pca_dim: int | None = None,
    show_progress: bool = False,
    engine: str | Engine = "local",
    **method_params: Any,
) -> Selection:
    """Select pool items for pre-fine-tuning towards ``target``.

    ``pool`` and ``target`` are paths (JSONL, Parquet, CSV/TSV, text, HF dataset directory), lists
    of paths, or ``Corpus`` objects. ``method`` is one of ``tunesift.methods.METHODS`` (gotd,
    dsir, rds, kmq, d4, ccs, zipfit, random, random-balanced). The budget is ``budget`` documents,
    or ``budget_tokens`` tokens (whitespace-separated words); 1,000 documents when neither is given; at most
    ``max_per_source`` per source. Features come from ``featurizer`` ("minilm", "static",
    "ngrams", or a local sentence-transformers folder; ``featurizer_params`` such as
    ``{"backend": "onnx"}`` go to it), cached under ``cache_dir``; or from
    ``pool_features``/``target_features`` .npy files (rows aligned with the records; with no
    records, a selected record is its row index). ``pca_dim`` projects both onto the top
    principal components of a pool sample plus the target before the method runs. Extra keyword
    arguments are the method's hyper-parameters (see each method's class docstring).
    ``engine`` runs the two map steps, embedding and scoring shards: "local" (default), "ray"
    (a local Ray cluster, or the one ``RAY_ADDRESS`` names), or an ``Engine`` such as
    ``RayEngine(address=..., gpus_per_task=1)``; the selection is the same on either.
    """
    t_start = time.perf_counter()
    if budget is None and budget_tokens is None:
        budget = 1000
    b = Budget(docs=budget, tokens=budget_tokens, max_per_source=max_per_source)
    m = build_method(method, method_params, seed=seed, device=device, progress=show_progress)
    prep = prepare(
        pool,
        target,
        needs=(m.inputs,),
        columns=m.record_columns(),
        featurizer=featurizer,
        featurizer_params=featurizer_params,
        pool_features=pool_features,
        target_features=target_features,
        text_field=text_field,
        id_field=id_field,
        source_field=source_field,
        text_template=text_template,
        on_bad=on_bad,
        cache_dir=cache_dir,
        device=device,
        seed=seed,
        pca_dim=pca_dim,
        show_progress=show_progress,
        max_budget=b.docs,
        engine=engine,
    )
    selection = run_method(
        prep, m, b, seed=seed, device=device, show_progress=show_progress, engine=engine
    )
    selection.info["inputs"]["pool_features"] = str(pool_features) if pool_features else None
    selection.info["inputs"]["target_features"] = str(target_features) if target_features else None
    selection.info["timings_s"]["total"] = round(time.perf_counter() - t_start, 3)
    return selection


SCORE_SHARD_ROWS = 262_144
#: overrides ``SCORE_SHARD_ROWS`` and the engine's shard rows (tests use it to get many shards)
SCORE_SHARD_ROWS_ENV = "TUNESIFT_SCORE_SHARD_ROWS"


def _score_shard(method: Method, shard: Any) -> np.ndarray:
    return np.asarray(method.score(shard), dtype=np.float64)


def _score_in_shards(
    method: Method,
    x: Any,
    show_progress: bool,
    engine: Engine | None = None,
    cache_dir: Path | None = None,
) -> np.ndarray:
    """``method.score`` shard by shard (the map step; each shard is independent), with progress.

    Shards are ``SCORE_SHARD_ROWS`` rows, or the engine's own ``shard_rows`` (Ray: smaller, so
    that every worker gets some); a row's score does not depend on its shard. With more than
    one shard and a ``cache_dir``, each finished shard's scores are kept under
    ``<cache_dir>/scores/<key>`` (key: the rows' fingerprint and the fitted method's name,
    parameters and state), so a killed run's rerun scores only the shards it had not finished.
    """
    engine = engine or get_engine("local")
    rows = env_rows(SCORE_SHARD_ROWS_ENV) or getattr(engine, "shard_rows", None) or SCORE_SHARD_ROWS
    bounds = [(start, min(start + rows, len(x))) for start in range(0, len(x), rows)]
    folder = None
    if cache_dir is not None and len(bounds) > 1:
        folder = score_cache_dir(cache_dir, x, method, rows)
        if folder is None:
            logger.info("%s: scores not cached (its state cannot be fingerprinted)", method.name)
    if folder is None:
        return _score_shards(method, x, bounds, show_progress, engine, None)
    with folder_lock(folder):
        return _score_shards(method, x, bounds, show_progress, engine, ShardStore(folder))


def _score_shards(
    method: Method,
    x: Any,
    bounds: list[tuple[int, int]],
    show_progress: bool,
    engine: Engine,
    store: ShardStore | None,
) -> np.ndarray:
    # float64: ZIP-FIT's and DSIR's scores sit in narrow bands where float32 would merge ties
    scores = np.empty(len(x), dtype=np.float64)
    todo = []
    for k, (start, stop) in enumerate(bounds):
        if store is not None and store.valid(k, stop - start) is not None:
            scores[start:stop] = store.load(k)
            store.reused += 1
        else:
            todo.append(k)
    bar = None
    if show_progress and len(bounds) > 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(x), desc="scoring", unit="row", dynamic_ncols=True)
        bar.update(len(x) - sum(bounds[k][1] - bounds[k][0] for k in todo))
    # lazily sliced: a memory-mapped pool is read one shard at a time, also when sent to Ray
    shards = (x[bounds[k][0] : bounds[k][1]] for k in todo)
    results = engine.map(_score_shard, shards, shared=method)
    for k, part in zip(todo, results, strict=True):
        start, stop = bounds[k]
        if len(part) != stop - start:
            raise TunesiftError(
                f"{method.name} returned {len(part)} scores for a shard of {stop - start} rows"
            )
        scores[start:stop] = part
        if store is not None:
            store.put(k, np.asarray(part, dtype=np.float64))
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    if store is not None:
        logger.info(
            "scores %s: %d shards computed, %d reused from an earlier run",
            store.root, store.computed, store.reused,
        )  # fmt: skip
    return scores
