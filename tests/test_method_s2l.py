"""S2L (SmallToLarge): loss-trajectory clusters follow planted difficulty groups, the balanced
sample is Algorithm 1's at every budget, seeded fits repeat byte for byte, the CLI. TinyLM with
LoRA, tens of rows: seconds on a CPU."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from tunesift.cli.main import main
from tunesift.errors import TunesiftError
from tunesift.methods import make_method
from tunesift.methods.base import PoolInfo
from tunesift.methods.budget import Budget, fill
from tunesift.methods.kmeans import assign, fit_kmeans
from tunesift.methods.s2l import balanced_order, checkpoint_steps

TINY = dict(model="tinylm", n_clusters=3, n_checkpoints=3, steps=12, max_length=40,
            batch_size=8, lr=1e-2, device="cpu", threads=1)  # fmt: skip
NOISE_CHARS = string.ascii_letters + string.digits + string.punctuation
WORDS = "the of and to in is that it was for on are as with his they at be this from".split()


def planted_pool(n_easy: int = 6, n_medium: int = 48, n_noise: int = 6, seed: int = 0):
    """Three difficulty groups, shuffled: short motifs over two letters repeated (easy), random
    sequences of twenty common English words (medium: 80% of the pool), uniform random printable
    characters (noise). Returns the texts and each one's group (0 easy, 1 medium, 2 noise)."""
    rng = np.random.default_rng(seed)
    motifs = ["".join(rng.choice(list("ab"), size=int(rng.integers(2, 4)))) for _ in range(n_easy)]
    easy = [(m * 40)[:40] for m in motifs]
    medium = [" ".join(rng.choice(WORDS, size=40))[:40] for _ in range(n_medium)]
    noise = ["".join(rng.choice(list(NOISE_CHARS), size=40)) for _ in range(n_noise)]
    texts = easy + medium + noise
    group = np.repeat([0, 1, 2], [n_easy, n_medium, n_noise])
    perm = rng.permutation(len(texts))
    return [texts[i] for i in perm], group[perm]


@pytest.fixture(scope="module")
def planted():
    pool, group = planted_pool()
    return pool, group, make_method("s2l", **TINY).fit(pool, None)


def algorithm_1_counts(sizes: list[int], budget: int) -> list[int]:
    """The paper's Algorithm 1, written out: clusters visited from the smallest (given sorted
    ascending), the k-th of K taking min(|C_k|, (B - |S|) // (K - k)) rows."""
    taken, left = [], budget
    for k, size in enumerate(sizes):
        take = min(size, left // (len(sizes) - k))
        taken.append(take)
        left -= take
    return taken


def test_s2l_clusters_follow_planted_difficulty_groups(planted):
    pool, group, m = planted
    # the trajectories rank the groups by difficulty at every checkpoint: easy < medium < noise
    means = np.array([m.trajectories_[group == g].mean(axis=0) for g in range(3)])
    assert (means[0] < means[1]).all() and (means[1] < means[2]).all(), means
    assert m.train_losses_[-1] < m.train_losses_[0]
    # k-means on the trajectories recovers the three groups
    assert adjusted_rand_score(group, m.labels_) >= 0.9
    assert m.trajectories_.shape == (len(pool), 3) and m.checkpoint_steps_ == (4, 8, 12)
    # the balanced sample draws every group about equally although medium is 80% of the pool
    order = m.order(m.score(pool), PoolInfo(size=len(pool)))
    counts = np.bincount(group[order[:18]], minlength=3)
    assert counts.min() >= 5 and counts.max() <= 7, counts
    rnd = make_method("random", seed=0).fit(None, None)
    r_order = rnd.order(rnd.score(np.empty((len(pool), 0))), PoolInfo(size=len(pool)))
    r_counts = np.bincount(group[r_order[:18]], minlength=3)
    assert r_counts[1] >= 11, r_counts  # random follows the pool's 80%
    # a new row is placed by its own trajectory: a fresh noise string joins the noise cluster
    rng = np.random.default_rng(9)
    fresh = "".join(rng.choice(list(NOISE_CHARS), size=40))
    noise_label = np.bincount(m.labels_[group == 2]).argmax()
    assert m.score([fresh])[0] == noise_label


def test_s2l_order_prefixes_are_algorithm_1_at_every_budget():
    """Fixed trajectories in planted clusters of uneven sizes (one row, two rows, ties): the
    k-means labels are the clusters, and every prefix of the order has Algorithm 1's count in
    every cluster, each cluster's rows a prefix of one random order."""
    rng = np.random.default_rng(1)
    sizes = [1, 2, 5, 5, 13, 40]
    centres = rng.normal(scale=10.0, size=(len(sizes), 4))
    planted = np.repeat(np.arange(len(sizes)), sizes)
    traj = (centres[planted] + rng.normal(scale=0.1, size=(len(planted), 4))).astype(np.float32)
    perm = rng.permutation(len(planted))
    traj, planted = traj[perm], planted[perm]
    labels, _ = assign(traj, fit_kmeans(traj, len(sizes), seed=0))
    assert adjusted_rand_score(planted, labels) == 1.0

    m = make_method("s2l", **TINY)
    m.labels_ = labels  # order needs a fitted method, and reads only the scores it is given
    order = m.order(labels.astype(np.float64), PoolInfo(size=len(labels)))
    assert sorted(order.tolist()) == list(range(len(labels)))
    # Algorithm 1 visits the clusters by size (ties by label); its counts at every budget
    by_size = sorted(set(labels.tolist()), key=lambda c: ((labels == c).sum(), c))
    size_list = [int((labels == c).sum()) for c in by_size]
    for budget in range(1, len(labels) + 1):
        got = [int((labels[order[:budget]] == c).sum()) for c in by_size]
        assert got == algorithm_1_counts(size_list, budget), budget
    # inside a cluster the rows come in one order, whatever the budget
    for c in by_size:
        rows = order[labels[order] == c]
        assert sorted(rows.tolist()) == np.flatnonzero(labels == c).tolist()
    # equal clusters of random sizes, many configurations: the same identity
    for trial in range(200):
        lab = rng.integers(0, int(rng.integers(1, 8)), size=int(rng.integers(1, 40)))
        o = balanced_order(lab, seed=trial)
        ids = sorted(set(lab.tolist()), key=lambda c: ((lab == c).sum(), c))
        sz = [int((lab == c).sum()) for c in ids]
        for budget in range(1, len(lab) + 1):
            got = [int((lab[o[:budget]] == c).sum()) for c in ids]
            assert got == algorithm_1_counts(sz, budget), (lab.tolist(), budget)


def official_counts(sizes: list[int], budget: int) -> tuple[list[int], int]:
    """The official ``faiss_kmeans_selection``'s counts, written out: clusters of more than two
    rows (sorted ascending) take min(size, n // clusters left); the budget left is drawn from
    the union of the others. Returns the counts of the large clusters and the draw's size."""
    large = [z for z in sizes if z > 2]
    taken, left = [], budget
    for i, size in enumerate(large):
        per = left // (len(large) - i)
        take = per if size > per else size
        taken.append(take)
        left -= take
    return taken, left


def test_s2l_min_cluster_size_3_is_the_official_codes_rule():
    rng = np.random.default_rng(4)
    for trial in range(200):
        lab = rng.integers(0, int(rng.integers(1, 9)), size=int(rng.integers(1, 40)))
        o = balanced_order(lab, seed=trial, min_cluster_size=3)
        assert sorted(o.tolist()) == list(range(len(lab)))
        ids = sorted(set(lab.tolist()), key=lambda c: ((lab == c).sum(), c))
        sizes = {c: int((lab == c).sum()) for c in ids}
        large = [c for c in ids if sizes[c] > 2]
        in_small = np.isin(lab, [c for c in ids if sizes[c] <= 2])
        for budget in range(1, len(lab) + 1):
            taken, left = official_counts([sizes[c] for c in ids], budget)
            got = [int((lab[o[:budget]] == c).sum()) for c in large]
            assert got == taken and int(in_small[o[:budget]].sum()) == left, (lab, budget)
    # the default (1) is Algorithm 1: a two-row cluster is in the sample from a budget of 3 rows
    lab = np.repeat([0, 1], [2, 10])
    assert sorted(lab[balanced_order(lab, 0)[:4]].tolist()) == [0, 0, 1, 1]
    assert lab[balanced_order(lab, 0, min_cluster_size=3)[:4]].tolist() == [1, 1, 1, 1]


def test_s2l_draws_uniformly_inside_a_cluster():
    """Each row of a cluster is in a budget's sample with probability quota / size (seeds vary)."""
    labels = np.repeat([0, 1, 2], [3, 8, 20])
    hits = np.zeros(len(labels))
    n = 4000
    for seed in range(n):
        hits[balanced_order(labels, seed)[:12]] += 1
    # Algorithm 1 at budget 12: 3 (all), then 4 of 8, then 5 of 20
    np.testing.assert_allclose(hits[:3] / n, 1.0)
    np.testing.assert_allclose(hits[3:11] / n, 4 / 8, atol=0.04)
    np.testing.assert_allclose(hits[11:] / n, 5 / 20, atol=0.04)


def test_s2l_is_seeded_and_repeats_byte_for_byte(planted):
    pool, _, m = planted
    again = make_method("s2l", **TINY).fit(pool, None)
    assert again.trajectories_.tobytes() == m.trajectories_.tobytes()
    assert again.checkpoint_weights_.tobytes() == m.checkpoint_weights_.tobytes()
    assert again.labels_.tobytes() == m.labels_.tobytes()
    info = PoolInfo(size=len(pool))
    first = m.order(m.score(pool), info)
    assert again.order(again.score(pool), info).tobytes() == first.tobytes()
    # another seed draws other rows inside the clusters
    other = make_method("s2l", **TINY)
    other.labels_ = m.labels_
    other.set_params(seed=5)
    assert other.order(m.score(pool), info).tolist() != first.tolist()


def test_s2l_order_walks_every_budget_kind(planted):
    """A token budget and a per-source cap walk S2L's order like any other (``budget.fill``)."""
    pool, group, m = planted
    order = m.order(m.score(pool), PoolInfo(size=len(pool)))
    lengths = np.array([len(t.split()) for t in pool])
    by_tokens = fill(order, Budget(tokens=100), lengths=lengths)
    assert lengths[by_tokens].sum() <= 100 and by_tokens.tolist() == [
        i for i in order.tolist() if i in set(by_tokens.tolist())
    ]
    capped = fill(order, Budget(docs=12, max_per_source=4), sources=group)
    assert len(capped) == 12 and np.bincount(group[capped], minlength=3).max() <= 4


def test_s2l_checkpoints_are_spread_over_the_training():
    assert checkpoint_steps(200, 4) == (50, 100, 150, 200)
    assert checkpoint_steps(5, 5) == (1, 2, 3, 4, 5)
    assert checkpoint_steps(10, 3) == (3, 7, 10)


def test_s2l_refuses_bad_parameters_and_inputs(planted):
    for params, name in (
        ({"n_clusters": 0}, "n_clusters"),
        ({"n_checkpoints": True}, "n_checkpoints"),
        ({"fit_sample": 0}, "fit_sample"),
        ({"min_cluster_size": 0}, "min_cluster_size"),
        ({"steps": 2, "n_checkpoints": 3}, "steps"),
        ({"lr": 0}, "lr"),
    ):
        with pytest.raises(TunesiftError, match=name) as info:
            make_method("s2l", **{**TINY, **params})
        assert info.value.param == name
    with pytest.raises(TunesiftError, match="pool"):
        make_method("s2l", **TINY).fit([], None)
    _, _, m = planted
    with pytest.raises(TunesiftError, match="texts"):
        m.score([3])
    with pytest.raises(TunesiftError, match="cluster labels"):
        m.order(np.array([0.5, 1.0]), PoolInfo(size=2))


def _write(path: Path, texts) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def test_s2l_through_select_and_compare_records_its_parameters(tmp_path, capsys):
    pool, group = planted_pool()
    pool_path = _write(tmp_path / "pool.jsonl", pool)
    target_path = _write(tmp_path / "target.jsonl", ["anything at all"])
    settings = {k: v for k, v in TINY.items() if k != "device"}
    params = [a for k, v in settings.items() for a in ("--param", f"{k}={v}")]
    out = tmp_path / "sel.jsonl"
    argv = ["select", "--pool", pool_path, "--target", target_path, "--budget", 18,
            "--method", "s2l", *params, "--device", "cpu", "--out", out, "-q"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    counts = np.bincount(group[[r["index"] for r in rows]], minlength=3)
    assert len(rows) == 18 and counts.min() >= 5, counts
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["method"] == "s2l" and meta["params"]["n_checkpoints"] == 3
    assert meta["params"]["n_clusters"] == 3 and meta["diagnostics"]["clusters"] == 3
    assert meta["diagnostics"]["checkpoint_steps"] == [4, 8, 12]

    saved = tmp_path / "cmp.json"
    cparams = [a for k, v in settings.items() for a in ("--param", f"s2l.{k}={v}")]
    argv = ["compare", "--pool", pool_path, "--target", target_path, "--budget", 18,
            "--methods", "s2l,random", *cparams, "--featurizer", "ngrams",
            "--cache-dir", tmp_path / "cache", "--device", "cpu", "-q",
            "--save", saved]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    table = json.loads(saved.read_text())
    s2l = next(r for r in table["results"] if r["method"] == "s2l")
    assert s2l["documents"] == 18 and s2l["params"]["steps"] == 12


def test_s2l_is_listed_by_the_method_error(capsys):
    argv = ["select", "--pool", "x", "--target", "y", "--budget", "5", "--method", "nope", "-q"]
    assert main(argv) == 2
    assert "s2l" in capsys.readouterr().err
