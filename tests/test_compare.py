"""`tunesift compare` and the shared budget options, on real text from the Debian corpora."""

import csv
import json

import numpy as np
import pytest

from tunesift.cli.main import main
from tunesift.comparison import compare, format_comparison
from tunesift.corpora import build as corpora_build

pytestmark = pytest.mark.skipif(
    not corpora_build.sources_available(["fortunes", "bible", "perlfaq", "gcide"]),
    reason="Debian corpora not installed (run scripts/setup.sh)",
)


@pytest.fixture(scope="module")
def genesis(tmp_path_factory):
    """A 9-source pool with 100 Bible verses (none from Genesis); the target is Genesis."""
    out = tmp_path_factory.mktemp("genesis")
    return corpora_build.build_corpora(
        out, max_per_source=100, target="bible:Genesis", target_size=100, seed=0
    )


def _bible_share(result, budget):
    return {r.method: r.by_source.get("bible", 0) / budget for r in result.results}


def test_rds_and_gotd_recover_the_target_domain_on_real_text(genesis, shared_cache):
    """Issue 4, acceptance 4: a target domain found in a mixed pool with >= 90% precision."""
    result = compare(
        genesis.pool_path,
        genesis.target_path,
        ["rds", "gotd", "random"],
        60,
        featurizer="minilm",
        cache_dir=shared_cache,
    )
    share = _bible_share(result, 60)
    assert share["rds"] >= 0.9 and share["gotd"] >= 0.9
    assert share["random"] < 0.3  # the pool is ~11% Bible: the methods, not the pool, found it
    rows = {r.method: r for r in result.results}
    # target-aware picks are closer to the target than random ones, on both yardsticks
    assert rows["gotd"].ot_cost < rows["random"].ot_cost
    assert rows["rds"].kl_reduction > rows["random"].kl_reduction
    assert result.overlap["rds"]["rds"] == 1.0
    table = format_comparison(result)
    assert "overlap (Jaccard)" in table and "bible" in table


def test_compare_cli_prints_one_table_and_saves_it(genesis, shared_cache, tmp_path, capsys):
    for suffix in ("json", "csv"):
        out = tmp_path / f"cmp.{suffix}"
        rc = main([
            "compare", "--pool", str(genesis.pool_path), "--target", str(genesis.target_path),
            "--budget", "50", "--methods", "kmq,random,random-balanced",
            "--param", "kmq.n_clusters=5", "--param", "random-balanced.seed=3",
            "--featurizer", "minilm", "--cache-dir", str(shared_cache), "-q", "--save", str(out),
        ])  # fmt: skip
        assert rc == 0
        printed = capsys.readouterr().out
        assert "tunesift compare: 3 methods, 50 documents" in printed
        assert f"wrote {out}" in printed
    saved = json.loads((tmp_path / "cmp.json").read_text())
    assert [r["method"] for r in saved["results"]] == ["kmq", "random", "random-balanced"]
    assert saved["results"][0]["params"]["n_clusters"] == 5
    assert saved["results"][2]["params"]["seed"] == 3
    # random-balanced: 9 sources, 50 documents: every source gets 5 or 6
    assert sorted(saved["results"][2]["by_source"].values()) == [5, 5, 5, 5, 6, 6, 6, 6, 6]
    rows = list(csv.DictReader(open(tmp_path / "cmp.csv")))
    assert [r["method"] for r in rows] == ["kmq", "random", "random-balanced"]
    assert float(rows[1]["jaccard_random"]) == 1.0


def test_compare_rejects_bad_method_lists(genesis, capsys):
    rc = main(["compare", "--pool", str(genesis.pool_path), "--target", str(genesis.target_path),
               "--budget", "5", "--methods", "rds,nope"])  # fmt: skip
    assert rc == 2 and "unknown method 'nope'" in capsys.readouterr().err
    rc = main(["compare", "--pool", str(genesis.pool_path), "--target", str(genesis.target_path),
               "--budget", "5", "--methods", "rds", "--param", "n_clusters=3"])  # fmt: skip
    assert rc == 2 and "METHOD.NAME=VALUE" in capsys.readouterr().err


def test_select_with_a_token_budget_and_a_source_cap(genesis, shared_cache, tmp_path, capsys):
    out = tmp_path / "sel.jsonl"
    rc = main([
        "select", "--pool", str(genesis.pool_path), "--target", str(genesis.target_path),
        "--budget-tokens", "3000", "--max-per-source", "20", "--method", "rds",
        "--featurizer", "minilm", "--cache-dir", str(shared_cache), "-q", "--out", str(out),
    ])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    records = [json.loads(line) for line in out.open()]
    words = sum(len(r["text"].split()) for r in records)
    assert 2500 < words <= 3000  # filled, never over
    by_source = {}
    for r in records:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
    assert max(by_source.values()) <= 20
    meta = json.loads(open(str(out) + ".meta.json").read())
    assert meta["budget"]["tokens"] == 3000 and meta["budget"]["selected_tokens"] == words
    assert meta["budget"]["max_per_source"] == 20


def test_every_method_runs_under_a_source_cap(genesis, shared_cache):
    result = compare(
        genesis.pool_path,
        genesis.target_path,
        ["gotd", "rds", "kmq", "d4", "ccs", "random", "random-balanced"],
        40,
        max_per_source=8,
        method_params={"kmq": {"n_clusters": 5}, "d4": {"n_clusters": 5}},
        featurizer="minilm",
        cache_dir=shared_cache,
    )
    for r in result.results:
        assert r.documents == 40 and max(r.by_source.values()) <= 8, r.method
        assert np.isfinite(r.ot_cost)


def test_text_methods_from_the_cli_write_valid_scores(genesis, tmp_path, capsys):
    """DSIR (sha256 mode, via --param) and ZIP-FIT run from `select`; -inf scores become null."""
    for method, params in (("dsir", ["hash=sha256", "min_length=20"]), ("zipfit", ["level=6"])):
        out, scores = tmp_path / f"{method}.jsonl", tmp_path / f"{method}.scores.jsonl"
        args = ["select", "--pool", str(genesis.pool_path), "--target", str(genesis.target_path),
                "--budget", "30", "--method", method, "-q", "--out", str(out),
                "--scores-out", str(scores)]  # fmt: skip
        for p in params:
            args += ["--param", p]
        assert main(args) == 0, capsys.readouterr().err
        rows = [json.loads(line) for line in scores.open()]
        assert len(rows) == 900
        meta = json.loads(open(str(out) + ".meta.json").read())
        assert meta["method"] == method
        if method == "dsir":
            assert meta["params"]["hash"] == "sha256"
            assert any(r["score"] is None for r in rows)  # the texts under 20 tokens
            selected = [json.loads(line) for line in out.open()]
            assert all(r["score"] is not None for r in selected)
        else:
            assert meta["params"]["level"] == 6
