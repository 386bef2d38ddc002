"""``tunesift.select``: from files (or precomputed features) to a Selection, in one call.

corpus -> features (cached, resumable) -> method.fit / score / select -> Selection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.corpus.corpus import Corpus
from tunesift.errors import InputError, TunesiftError
from tunesift.features.pca import PCA
from tunesift.features.registry import get_featurizer
from tunesift.features.store import default_cache_dir, featurize, load_features_npy
from tunesift.methods import make_method
from tunesift.ot.sinkhorn import resolve_device, sinkhorn
from tunesift.selection import Selection

logger = logging.getLogger(__name__)

PathLike = str | Path
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
) -> np.ndarray:
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
        raise TunesiftError(f"no {role} given: pass {role} files or --{role}-features")
    return featurize(
        corpus,
        featurizer,
        cache_dir=cache_dir,
        show_progress=show_progress,
        desc=f"embedding {role}",
    )


def select(
    pool: Source = None,
    target: Source = None,
    budget: int = 1000,
    *,
    method: str = "gotd",
    featurizer: str = "minilm",
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
    **method_params: Any,
) -> Selection:
    """Select ``budget`` pool items for pre-fine-tuning towards ``target``.

    ``pool`` and ``target`` are paths (JSONL, Parquet, CSV/TSV, text, HF dataset directory), lists
    of paths, or ``Corpus`` objects. Features come from ``featurizer`` ("minilm", "static",
    "ngrams", or a local sentence-transformers folder), cached under ``cache_dir``; or from
    ``pool_features``/``target_features`` .npy files (rows aligned with the records; with no
    records, a selected record is its row index). ``pca_dim`` projects both onto the top
    principal components of a pool sample plus the target before the method runs. Extra keyword
    arguments are the method's hyper-parameters (for GOT-D: ``epsilon``, ``epsilon_mode``,
    ``tol``, ``max_iter``, ``momentum``, ``ot_mode``, ``fit_sample``).
    """
    t_start = time.perf_counter()
    if (pool_features is None) != (target_features is None):
        raise TunesiftError(
            "--pool-features and --target-features go together: both spaces must match"
        )
    resolve_device(device)  # "cuda" without a GPU is a one-line error before any work
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise TunesiftError(f"budget must be a positive integer, got {budget!r}")
    options = dict(
        text_field=text_field,
        id_field=id_field,
        source_field=source_field,
        text_template=text_template,
        on_bad=on_bad,
    )
    pool_corpus = _as_corpus(pool, **options)
    target_corpus = _as_corpus(target, **options)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    # Fail before the long embedding work on what can be checked from the records alone.
    if pool_features is None and pool_corpus is not None:
        n_target = target_corpus.count() if target_corpus is not None else 0
        if target_corpus is not None and n_target == 0:
            raise InputError(
                "the target holds no records", ", ".join(map(str, target_corpus.paths))
            )
        n_pool = pool_corpus.count()
        if budget > n_pool:
            raise InputError(
                f"budget {budget} is larger than the pool ({n_pool} records)",
                ", ".join(map(str, pool_corpus.paths)),
            )

    feat = None
    if pool_features is None:
        feat = get_featurizer(featurizer, cache_dir=cache, device=device)
    t0 = time.perf_counter()
    x_pool = _features_for(pool_corpus, pool_features, "pool", feat, cache, show_progress)
    x_target = _features_for(target_corpus, target_features, "target", feat, cache, show_progress)
    t_features = time.perf_counter() - t0
    if len(x_target) == 0:
        raise InputError("the target is empty", target_features or "target")
    if x_pool.shape[1] != x_target.shape[1]:
        raise TunesiftError(
            f"pool features are {x_pool.shape[1]}-d but target features are {x_target.shape[1]}-d"
        )
    if budget > len(x_pool):
        raise InputError(
            f"budget {budget} is larger than the pool ({len(x_pool)} rows)", pool_features or "pool"
        )

    pca_info = None
    if pca_dim is not None:
        pca = PCA.fit(x_pool, x_target, pca_dim, seed=seed)
        x_pool, x_target = pca.transform(x_pool), pca.transform(x_target)
        pca_info = {"dim": pca_dim, "explained_variance_ratio": pca.explained_variance_ratio}

    params = dict(method_params)
    params.setdefault("seed", seed)
    if method == "gotd":
        params.setdefault("device", device)
        params.setdefault("progress", show_progress)
    m = make_method(method, **params)
    t0 = time.perf_counter()
    m.fit(x_pool, x_target)
    scores = _score_in_shards(m, x_pool, show_progress)
    indices = m.select(scores, int(budget))
    t_method = time.perf_counter() - t0
    diagnostics = m.diagnostics()
    eps = diagnostics.get("eps_absolute")
    if eps is not None:
        # The same epsilon, so the two costs are comparable: how much closer the selection is.
        sel = sinkhorn(x_pool[indices], x_target, eps, tol=1e-4, device=device)
        diagnostics["ot_cost_target_selection"] = sel.cost
        diagnostics["ot_cost_target_pool"] = diagnostics.get("ot_cost")
    return Selection(
        method=method,
        indices=np.asarray(indices, dtype=np.int64),
        scores=np.asarray(scores, dtype=np.float32),
        params={k: v for k, v in m.get_params().items()},
        diagnostics=diagnostics,
        seed=seed,
        pool_size=len(x_pool),
        target_size=len(x_target),
        pool=pool_corpus,
        info={
            "featurizer": getattr(feat, "id", None) if feat is not None else "precomputed",
            "pca": pca_info,
            "inputs": {
                "pool": [str(p) for p in pool_corpus.paths] if pool_corpus else None,
                "target": [str(p) for p in target_corpus.paths] if target_corpus else None,
                "pool_features": str(pool_features) if pool_features else None,
                "target_features": str(target_features) if target_features else None,
            },
            "bad_records": {
                "pool": _bad_summary(pool_corpus),
                "target": _bad_summary(target_corpus),
            },
            "timings_s": {
                "features": round(t_features, 3),
                "method": round(t_method, 3),
                "total": round(time.perf_counter() - t_start, 3),
            },
        },
    )


SCORE_SHARD_ROWS = 262_144


def _score_in_shards(method: Any, x: np.ndarray, show_progress: bool) -> np.ndarray:
    """``method.score`` shard by shard (the map step; each shard is independent), with progress."""
    scores = np.empty(len(x), dtype=np.float32)
    bar = None
    if show_progress and len(x) > SCORE_SHARD_ROWS:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(x), desc="scoring", unit="row", dynamic_ncols=True)
    for start in range(0, len(x), SCORE_SHARD_ROWS):
        stop = min(start + SCORE_SHARD_ROWS, len(x))
        scores[start:stop] = method.score(x[start:stop])
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    return scores


def _bad_summary(corpus: Corpus | None) -> dict[str, Any] | None:
    if corpus is None:
        return None
    rep = corpus.report
    return {
        "skipped": rep.bad,
        "by_reason": dict(rep.bad_by_reason),
        "examples": [f"{b.path}:{b.line}: {b.reason}" for b in rep.examples],
    }
