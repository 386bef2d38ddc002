"""``tunesift.compare``: several methods on the same features and budget, on the same metrics.

Features and texts are read once (``api.prepare``) and every method runs on them
(``api.run_method``), so a comparison measures the methods, not their plumbing. Each row reports
the method's wall time (fit + score + order + budget), the selection's KL reduction on hashed
n-grams, its entropic OT cost to the target (one epsilon for all rows), its exact and near
duplicate rates and its composition by source; then the Jaccard overlap of every pair.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesift._version import __version__
from tunesift.api import Prepared, Source, build_method, prepare, run_method
from tunesift.engine import Engine, get_engine
from tunesift.errors import TunesiftError
from tunesift.features.ngrams import hashed_counts
from tunesift.features.score_cache import data_fingerprint, method_identity
from tunesift.features.store import ShardStore, folder_lock
from tunesift.methods import NAMES
from tunesift.methods.budget import Budget
from tunesift.methods.gotd import GOTD
from tunesift.ot.sinkhorn import estimate_cost_scale, sinkhorn
from tunesift.outputs import atomic_open, write_json_atomic
from tunesift.report import metrics
from tunesift.selection import Selection

logger = logging.getLogger(__name__)

#: epsilon of the OT metric, relative to the median pool-target cost (GOT-D's default)
OT_EPSILON: float = GOTD.default_params()["epsilon"]
#: above this many pool rows the pool's own OT cost (a reference line) is skipped
OT_POOL_LIMIT = 200_000


@dataclass
class MethodResult:
    method: str
    seconds: float
    documents: int
    tokens: int | None
    kl_reduction: float | None
    ot_cost: float | None
    exact_duplicates: float | None
    near_duplicates: float | None
    by_source: dict[str, int] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comparison:
    budget: dict[str, Any]
    pool_size: int
    target_size: int
    featurizer: str | None
    results: list[MethodResult]
    overlap: dict[str, dict[str, float]]
    reference: dict[str, Any]
    selections: dict[str, Selection] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("selections")
        return d

    def write(self, path: str | Path) -> Path:
        """JSON (everything) or CSV (one row per method), by extension, atomically."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            write_json_atomic(path, self.to_dict(), indent=2, default=str)
        elif suffix == ".csv":
            with atomic_open(path, "w", newline="") as fh:
                w = csv.writer(fh)
                names = [r.method for r in self.results]
                w.writerow(
                    ["method", "seconds", "documents", "tokens", "kl_reduction", "ot_cost",
                     "exact_duplicates", "near_duplicates"]
                    + [f"jaccard_{n}" for n in names]
                )  # fmt: skip
                for r in self.results:
                    w.writerow(
                        [r.method, r.seconds, r.documents, r.tokens, r.kl_reduction, r.ot_cost,
                         r.exact_duplicates, r.near_duplicates]
                        + [self.overlap[r.method][n] for n in names]
                    )  # fmt: skip
        else:
            raise TunesiftError(
                f"path must end with .json or .csv, got {path.name}",
                param="path",
                func="Comparison.write",
            )
        return path


def compare(
    pool: Source,
    target: Source,
    methods: Sequence[str],
    budget: int | None = None,
    *,
    budget_tokens: int | None = None,
    max_per_source: int | None = None,
    method_params: dict[str, dict[str, Any]] | None = None,
    featurizer: str = "minilm",
    seed: int = 0,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    show_progress: bool = False,
    engine: str | Engine = "local",
    **read_options: Any,
) -> Comparison:
    """Run ``methods`` on one shared preparation of ``pool`` and ``target``; measure each.

    ``method_params`` maps a method name to its hyper-parameters, e.g. ``{"dsir": {"hash":
    "sha256"}}``. ``read_options`` are ``select``'s reading options (text_field, source_field...).
    ``engine`` embeds and scores shards ("local", "ray" or an ``Engine``; see ``select``).
    """
    engine = get_engine(engine)
    method_params = method_params or {}
    unknown = [m for m in [*methods, *method_params] if m not in NAMES]
    if unknown:
        raise TunesiftError(
            f"unknown method {unknown[0]!r}; choose from {', '.join(sorted(NAMES))}"
        )
    if len(set(methods)) != len(methods):
        raise TunesiftError("each method may appear once in methods", param="methods")
    b = Budget(docs=budget, tokens=budget_tokens, max_per_source=max_per_source)
    built = {
        name: build_method(
            name, method_params.get(name, {}), seed=seed, device=device, progress=False
        )
        for name in methods
    }
    columns = sorted({c for m in built.values() for c in m.record_columns()})
    prep = prepare(
        pool,
        target,
        needs=("features", "texts"),
        columns=columns,
        featurizer=featurizer,
        cache_dir=cache_dir,
        device=device,
        seed=seed,
        show_progress=show_progress,
        max_budget=b.docs,
        engine=engine,
        **read_options,
    )
    yardstick = _Yardstick(prep, device)
    finished = _FinishedRuns(prep, b, seed, device)
    results, selections = [], {}
    with finished.locked():
        for name, m in built.items():
            where = finished.where(m)  # before the fit: from its name and parameters only
            kept = finished.load(where, name)
            if kept is None:
                sel = run_method(
                    prep, m, b, seed=seed, device=device, show_progress=show_progress,
                    engine=engine,
                )  # fmt: skip
                result = yardstick.measure(sel)
                finished.save(where, sel, result)
            else:
                sel, result = kept
            selections[name] = sel
            results.append(result)
    overlap = {
        a: {b_: round(metrics.jaccard(selections[a].indices, selections[b_].indices), 4)
            for b_ in built}
        for a in built
    }  # fmt: skip
    return Comparison(
        budget={"documents": b.docs, "tokens": b.tokens, "max_per_source": b.max_per_source},
        pool_size=prep.pool_size,
        target_size=prep.target_size,
        featurizer=prep.featurizer_id,
        results=results,
        overlap=overlap,
        reference=yardstick.reference(),
        selections=selections,
    )


class _FinishedRuns:
    """Each finished method's selection and measurements, kept so a killed compare continues.

    ``<cache>/compare/<run key>/<method key>/``: the indices and scores as checksummed shards,
    then ``result.json`` (written last, atomically: its presence marks the method finished). The
    run key covers the inputs (corpus fingerprints, the features' fingerprint), the budget, the
    seed, the device and the OT metric's epsilon; the method key its name and parameters. A
    method found there is loaded, not fitted, scored or measured again.
    """

    def __init__(self, prep: Prepared, budget: Budget, seed: int, device: str):
        self.prep = prep
        self.folder: Path | None = None
        data = [data_fingerprint(prep.x_pool), data_fingerprint(prep.x_target)]
        if prep.cache_dir is None or None in data:
            return
        run = {
            "pool": prep.pool_corpus.fingerprint() if prep.pool_corpus else None,
            "target": prep.target_corpus.fingerprint() if prep.target_corpus else None,
            "features": data,
            "budget": [budget.docs, budget.tokens, budget.max_per_source],
            "seed": seed,
            "device": device,
            "ot_epsilon": OT_EPSILON,
            "tunesift": __version__,
        }
        key = hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:20]
        self.folder = Path(prep.cache_dir) / "compare" / key

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        if self.folder is None:
            yield
            return
        with folder_lock(self.folder):
            yield

    def where(self, m: Any) -> Path | None:
        """The folder of unfitted method ``m`` (its name and parameters), or None."""
        ident = method_identity(m)
        if self.folder is None or ident is None:
            return None
        return self.folder / f"{m.name}-{ident['digest'][:16]}"

    def load(self, where: Path | None, name: str) -> tuple[Selection, MethodResult] | None:
        if where is None:
            return None
        store = ShardStore(where)
        saved = store.read_json("result.json")
        if saved is None:
            return None
        try:
            for k, crc in enumerate(saved["crc32"]):
                entry = store.valid(k)
                if entry is None or entry["crc32"] != crc:
                    return None
            s = saved["selection"]
            sel = Selection(
                method=s["method"],
                indices=np.array(store.load(0)),
                scores=np.array(store.load(1)),
                params=s["params"],
                diagnostics=s["diagnostics"],
                seed=s["seed"],
                pool_size=s["pool_size"],
                target_size=s["target_size"],
                pool=self.prep.pool_corpus,
                info=s["info"],
            )
            result = MethodResult(**saved["result"])
        except (KeyError, TypeError, ValueError, OSError):
            return None
        logger.info("compare: %s finished in an earlier run, kept in %s", name, where)
        return sel, result

    def save(self, where: Path | None, sel: Selection, result: MethodResult) -> None:
        if where is None:
            return
        where.mkdir(parents=True, exist_ok=True)
        store = ShardStore(where)
        crcs = [
            store.put(0, np.asarray(sel.indices, dtype=np.int64))["crc32"],
            store.put(1, np.asarray(sel.scores, dtype=np.float64))["crc32"],
        ]
        selection = {
            "method": sel.method, "params": sel.params, "diagnostics": sel.diagnostics,
            "seed": sel.seed, "pool_size": sel.pool_size, "target_size": sel.target_size,
            "info": sel.info,
        }  # fmt: skip
        record = {"crc32": crcs, "selection": selection, "result": asdict(result)}
        # through JSON and back, so a loaded run is the same objects as a kept one
        store.write_json("result.json", json.loads(json.dumps(record, default=_plain)))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class _Yardstick:
    """The shared measurements: n-gram counts and the OT epsilon are computed once."""

    def __init__(self, prep: Prepared, device: str):
        self.prep, self.device = prep, device
        # DSIR's feature space at its defaults (10,000 buckets, the fast hash)
        self.pool_counts = hashed_counts(prep.pool_texts or [])
        self.target_counts = hashed_counts(prep.target_texts or [])
        assert prep.x_pool is not None and prep.x_target is not None  # compare needs features
        scale = estimate_cost_scale(prep.x_pool, prep.x_target, "median", seed=0)
        self.eps = OT_EPSILON * scale

    def ot_cost(self, rows: np.ndarray | None) -> float:
        pool, target = self.prep.x_pool, self.prep.x_target
        assert pool is not None and target is not None
        x = pool if rows is None else pool[rows]
        return float(sinkhorn(x, target, self.eps, tol=1e-4, device=self.device).cost)

    def reference(self) -> dict[str, Any]:
        ref: dict[str, Any] = {"ot_epsilon_absolute": self.eps, "ot_epsilon_relative": OT_EPSILON}
        if self.prep.pool_size <= OT_POOL_LIMIT:
            ref["ot_cost_pool"] = self.ot_cost(None)
        if self.prep.info.sources is not None:
            all_rows = np.arange(self.prep.pool_size)
            ref["pool_by_source"] = dict(
                metrics.composition(self.prep.info.sources, self.prep.info.source_names, all_rows)
            )
        return ref

    def measure(self, sel: Selection) -> MethodResult:
        rows = sel.indices
        prep = self.prep
        texts = [prep.pool_texts[i] for i in rows] if prep.pool_texts is not None else None
        by_source: Counter[str] = Counter()
        if prep.info.sources is not None:
            by_source = metrics.composition(prep.info.sources, prep.info.source_names, rows)
        return MethodResult(
            method=sel.method,
            seconds=sel.info["timings_s"]["method"],
            documents=len(rows),
            tokens=sel.info["budget"]["selected_tokens"],
            kl_reduction=metrics.kl_reduction(
                self.target_counts, self.pool_counts, self.pool_counts[rows]
            ),
            ot_cost=self.ot_cost(rows),
            exact_duplicates=metrics.exact_duplicate_rate(texts) if texts is not None else None,
            near_duplicates=metrics.near_duplicate_rate(prep.x_pool[rows]),  # type: ignore[index]
            by_source=dict(by_source.most_common()),
            params=sel.params,
        )


def format_comparison(c: Comparison, top_sources: int = 6) -> str:
    """The table a person reads: one row per method, then composition, then overlaps."""
    b = c.budget
    what = f"{b['documents']:,} documents" if b["documents"] else f"{b['tokens']:,} tokens"
    if b["max_per_source"]:
        what += f", at most {b['max_per_source']:,} per source"
    lines = [
        f"tunesift compare: {len(c.results)} methods, {what} from a pool of {c.pool_size:,} "
        f"for a target of {c.target_size:,} (features: {c.featurizer})",
        "",
        f"  {'method':<16} {'time s':>7} {'docs':>7} {'tokens':>9} {'KL red.':>8} "
        f"{'OT cost':>8} {'dup%':>6} {'near%':>6}",
    ]
    for r in c.results:
        tokens = f"{r.tokens:,}" if r.tokens is not None else "-"
        lines.append(
            f"  {r.method:<16} {r.seconds:>7.2f} {r.documents:>7,} {tokens:>9} "
            f"{_num(r.kl_reduction, '.4f'):>8} {_num(r.ot_cost, '.4f'):>8} "
            f"{_num(r.exact_duplicates, '.1%'):>6} {_num(r.near_duplicates, '.1%'):>6}"
        )
    if "ot_cost_pool" in c.reference:
        lines.append(f"  (whole pool: OT cost {c.reference['ot_cost_pool']:.4f}, KL red. 0)")
    pool_sources = c.reference.get("pool_by_source")
    if pool_sources:
        total = sum(pool_sources.values())
        lines += ["", "selected by source (share of the selection; pool share in brackets):"]
        names = [s for s, _ in Counter(pool_sources).most_common()]
        shown = names[:top_sources]
        header = f"  {'method':<16} " + " ".join(f"{s[:12]:>12}" for s in shown) + f" {'other':>8}"
        lines.append(header)
        lines.append(
            f"  {'(pool)':<16} "
            + " ".join(f"{'(' + format(pool_sources[s] / total, '.0%') + ')':>12}" for s in shown)
            + f" {'(' + format(sum(pool_sources[s] for s in names[top_sources:]) / total, '.0%') + ')':>8}"
        )
        for r in c.results:
            n = max(r.documents, 1)
            other = sum(v for s, v in r.by_source.items() if s not in shown)
            lines.append(
                f"  {r.method:<16} "
                + " ".join(f"{r.by_source.get(s, 0) / n:>12.0%}" for s in shown)
                + f" {other / n:>8.0%}"
            )
    names = [r.method for r in c.results]
    if len(names) > 1:
        lines += [
            "",
            "overlap (Jaccard):",
            "  " + " " * 16 + " ".join(f"{n[:8]:>8}" for n in names),
        ]
        for a in names:
            lines.append(f"  {a:<16}" + " ".join(f"{c.overlap[a][b]:>8.2f}" for b in names))
    return "\n".join(lines)


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)
