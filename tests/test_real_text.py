"""Acceptance on real text from the Debian corpora: POT parity, and the default run's composition.

These need the Debian packages that scripts/setup.sh installs; they skip (saying why) elsewhere.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from tunesift.corpora import build as corpora_build
from tunesift.corpus.corpus import Corpus
from tunesift.features.registry import get_featurizer
from tunesift.features.store import featurize
from tunesift.ot.sinkhorn import estimate_cost_scale, sinkhorn

pytestmark = pytest.mark.skipif(
    not corpora_build.sources_available(["fortunes", "gcide", "wordnet"]),
    reason="Debian corpora not installed (run scripts/setup.sh)",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpora")
    return corpora_build.build_corpora(
        out, max_per_source=1500, target="gcide:Zool.", target_size=500, seed=0
    )


@pytest.fixture(scope="module")
def small_built(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpora-small")
    return corpora_build.build_corpora(
        out, max_per_source=150, target="gcide:Zool.", target_size=100, seed=0
    )


@pytest.fixture(scope="module")
def cache(shared_cache):
    return shared_cache


def test_pot_parity_on_real_text_embeddings(built, cache):
    """Issue 2, acceptance 3: 5,000 x 500 real text embeddings, same eps as POT's sinkhorn_log."""
    ot = pytest.importorskip("ot")
    torch = pytest.importorskip("torch")
    feat = get_featurizer("static", cache_dir=cache)
    pool = featurize(Corpus(built.pool_path), feat, cache_dir=cache)[:5000]
    target = featurize(Corpus(built.target_path), feat, cache_dir=cache)[:500]
    assert pool.shape == (5000, feat.dim) and target.shape == (500, feat.dim)
    eps = 0.05 * estimate_cost_scale(pool, target)
    ours = sinkhorn(pool, target, eps, tol=1e-6, max_iter=5000, device="cpu")
    assert ours.converged
    a = torch.full((500,), 1 / 500)
    b = torch.full((5000,), 1 / 5000)
    cost = ot.dist(torch.from_numpy(target), torch.from_numpy(pool))
    _, log = ot.sinkhorn(
        a, b, cost, eps, method="sinkhorn_log", log=True, numItermax=5000, stopThr=1e-7
    )
    g_pot = (eps * log["log_v"]).numpy()
    assert spearmanr(ours.g, g_pot).statistic >= 0.999
    k = 250  # top 5%
    top_ours = set(np.argsort(ours.g, kind="stable")[:k])
    top_pot = set(np.argsort(g_pot, kind="stable")[:k])
    assert len(top_ours & top_pot) / len(top_ours | top_pot) >= 0.98


def test_default_run_selects_from_the_sources_that_hold_such_text(
    small_built, cache, tmp_path, capsys
):
    """Issue 2, acceptance 4: a (Zool.) target draws from the dictionaries, not fortunes or code.

    The default featurizer (MiniLM), on a build of 150 texts per source (the README: 1,000) so that
    CI stays short (this build: 64 of 100 picks from the two dictionaries, 22% of the pool).
    With static features the same kind of run is far less focused (42% from the dictionaries at
    1,500 per source, against 81% with MiniLM at 2,000 per source; see the issue notes).
    """
    from tunesift.cli.main import main

    out = tmp_path / "sel.jsonl"
    args = ["select", "--pool", small_built.pool_path, "--target", small_built.target_path,
            "--budget", 100, "--featurizer", "minilm", "--cache-dir", cache, "--out", out,
            "--group-by", "label", "-q"]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    assert "selected by source" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_source: dict[str, int] = {}
    for r in rows:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
    dictionaries = by_source.get("gcide", 0) + by_source.get("wordnet", 0)
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    pool_by_source = meta["pool_by_source"]
    pool_share = (pool_by_source["gcide"] + pool_by_source["wordnet"]) / meta["counts"]["pool"]
    assert dictionaries / len(rows) > 0.5, by_source  # mostly the dictionaries...
    assert dictionaries / len(rows) > 2 * pool_share, (
        by_source,
        pool_share,
    )  # ...well above their share
    # within WordNet, animal glosses are enriched well above their share of the pool's WordNet
    pool_wordnet = [json.loads(line) for line in small_built.pool_path.read_text().splitlines()]
    pool_wordnet = [r for r in pool_wordnet if r["source"] == "wordnet"]
    animal_pool = sum(r["label"] == "noun.animal" for r in pool_wordnet) / len(pool_wordnet)
    selected_wordnet = [r for r in rows if r["source"] == "wordnet"]
    animal_sel = sum(r["label"] == "noun.animal" for r in selected_wordnet) / len(selected_wordnet)
    assert animal_sel > 3 * animal_pool, (animal_sel, animal_pool)
