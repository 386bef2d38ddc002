"""GOT-D on the paper's own sanity check (Kang et al. 2024, Fig. 3) and its basic contracts."""

import numpy as np
import pytest

from tunesift.errors import TunesiftError
from tunesift.methods import GOTD, make_method, top_k


def cats_and_dogs(seed=0):
    """Pool: 9,900 'cats' ~ N((0,0), I) + 100 'dogs' ~ N((5,0), I); target: 250 of each."""
    rng = np.random.default_rng(seed)
    pool = np.vstack([rng.normal(size=(9900, 2)), rng.normal(size=(100, 2)) + [5, 0]])
    target = np.vstack([rng.normal(size=(250, 2)), rng.normal(size=(250, 2)) + [5, 0]])
    return pool.astype(np.float32), target.astype(np.float32)


@pytest.mark.parametrize("epsilon", [0.05, 0.5])
def test_fig3_gotd_picks_the_underrepresented_dogs(epsilon):
    pool, target = cats_and_dogs()
    m = GOTD(epsilon=epsilon, device="cpu").fit(pool, target)
    chosen = m.select(m.score(pool), 100)
    assert m.result_.converged
    assert (chosen >= 9900).mean() >= 0.9


def test_fig3_nearest_neighbours_pick_cats():
    pool, target = cats_and_dogs()
    nearest = ((pool[:, None, :] - target[None]) ** 2).sum(-1).min(1)
    chosen = np.argsort(nearest, kind="stable")[:100]
    assert (chosen < 9900).mean() > 0.5


def test_absolute_epsilon_is_used_as_given():
    pool, target = cats_and_dogs()
    m = GOTD(epsilon=0.3, epsilon_mode="absolute", device="cpu").fit(pool, target)
    assert m.eps_ == 0.3 and m.diagnostics()["eps_absolute"] == 0.3


def test_relative_epsilon_scales_with_the_data():
    pool, target = cats_and_dogs()
    a = GOTD(device="cpu").fit(pool, target)
    b = GOTD(device="cpu").fit(pool * 10, target * 10)
    assert b.eps_ == pytest.approx(100 * a.eps_, rel=1e-5)
    # and the selection does not change with the units
    assert np.array_equal(a.select(a.score(pool), 100), b.select(b.score(pool * 10), 100))


def test_scores_are_deterministic():
    pool, target = cats_and_dogs()
    s1 = GOTD(device="cpu", seed=3).fit(pool, target).score(pool)
    s2 = GOTD(device="cpu", seed=3).fit(pool, target).score(pool)
    assert np.array_equal(s1, s2)


def test_top_k_breaks_ties_by_index():
    scores = np.array([1.0, 0.0, 0.0, 2.0, 0.0])
    assert top_k(scores, 2, ascending=True).tolist() == [1, 2]
    assert top_k(scores, 2, ascending=False).tolist() == [3, 0]
    with pytest.raises(TunesiftError):
        top_k(scores, 6, ascending=True)


def test_unknown_method_and_parameter_are_user_errors():
    with pytest.raises(TunesiftError, match="unknown method"):
        make_method("nope")
    with pytest.raises(TunesiftError, match="bad parameter"):
        make_method("gotd", temperature=3)


def test_sampled_mode_agrees_with_exact():
    """Out-of-sample extension: fit f on a pool sample, score everything by c-transform."""
    from scipy.stats import spearmanr

    pool, target = cats_and_dogs()
    exact = GOTD(device="cpu", ot_mode="exact").fit(pool, target)
    sampled = GOTD(device="cpu", ot_mode="sampled", fit_sample=3000, seed=1).fit(pool, target)
    assert exact.diagnostics()["ot_mode"] == "exact"
    assert sampled.diagnostics()["ot_mode"] == "sampled" and sampled.fit_size_ == 3000
    s_exact, s_sampled = exact.score(pool), sampled.score(pool)
    assert spearmanr(s_exact, s_sampled).statistic > 0.99
    top_exact = set(exact.select(s_exact, 100))
    top_sampled = set(sampled.select(s_sampled, 100))
    assert len(top_exact & top_sampled) / len(top_exact | top_sampled) > 0.8
    assert (sampled.select(s_sampled, 100) >= 9900).mean() >= 0.9


def test_auto_mode_is_exact_while_the_cost_fits():
    m = GOTD(fit_sample=100)
    assert m.fit_rows(1000, 50) is None  # 1000 x 50 floats fit easily
    rows = m.fit_rows(10**7, 2000)  # 80 GB of cost: sampled
    assert rows is not None and len(rows) == 100 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, GOTD(fit_sample=100).fit_rows(10**7, 2000))  # seeded
