"""GradEx task selection: the logistic emulation, the projection, the gradients, the search."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from tunesift.errors import TunesiftError
from tunesift.tasks import (
    ByteTokenizer,
    GradEx,
    GradientStore,
    SubsetEstimator,
    TinyLM,
    TinyLMConfig,
    TrainConfig,
    choose,
    fit_logistic,
)
from tunesift.tasks.data import read_task_file, task_files
from tunesift.tasks.estimate import (
    calibrate_lambda,
    forward_selection,
    gradient_similarity,
    no_update_loss,
    random_ensemble,
    random_subsets,
)
from tunesift.tasks.gradients import Projector, projected_gradients, trainable
from tunesift.tasks.lm import collate, outputs

TINY = TinyLMConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, context=48, seed=0)


# ------------------------------------------------------------------------------ logistic fit


def test_fit_logistic_is_the_minimizer():
    rng = np.random.default_rng(0)
    f, g = rng.normal(size=40), rng.normal(size=(40, 5))
    lam = 0.3
    z = fit_logistic(f, g, lam)

    def obj(z):
        return np.logaddexp(0, -(f + g @ z)).mean() + lam / 2 * z @ z

    ref = minimize(obj, np.zeros(5), method="BFGS", options={"gtol": 1e-10}).x
    assert np.allclose(z, ref, atol=1e-6)
    s = 1 / (1 + np.exp(f + g @ z))
    assert np.abs(-(g.T @ s) / 40 + lam * z).max() < 1e-9  # stationary
    with pytest.raises(TunesiftError, match="positive"):
        fit_logistic(f, g, 0.0)


def test_more_regularization_moves_less():
    rng = np.random.default_rng(1)
    f, g = rng.normal(size=30), rng.normal(size=(30, 4))
    norms = [np.linalg.norm(fit_logistic(f, g, lam)) for lam in (0.01, 0.1, 1, 10)]
    assert norms == sorted(norms, reverse=True) and norms[-1] < norms[0]


# ------------------------------------------------------------------------------- projection


def test_projection_is_seeded_blockwise_and_keeps_inner_products():
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.normal(size=(3, 5000)), dtype=torch.float32)
    a = Projector(5000, 400, seed=7, block=1000)(x)
    b = Projector(5000, 400, seed=7, block=1000)(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, Projector(5000, 400, seed=8, block=1000)(x))
    # the block size changes how P is generated, never its distribution: inner products survive
    ip, proj = (x @ x.T).numpy(), (a @ a.T).numpy()
    assert np.allclose(np.diag(proj) / np.diag(ip), 1, atol=0.2)
    # ±1/√d entries: projecting a one-hot picks one row of P
    e = torch.zeros(1, 5000)
    e[0, 1234] = 1
    row = Projector(5000, 400, seed=7, block=1000)(e)
    assert torch.allclose(row.abs(), torch.full_like(row, 400**-0.5))
    with pytest.raises(TunesiftError, match="entries"):
        Projector(10, 4)(torch.zeros(1, 11))


def _explicit_p(proj: Projector) -> torch.Tensor:
    rows = [proj._rows(b) for b in range(-(-proj.n_params // proj.block))]
    return torch.cat(rows) / proj.dim**0.5


def test_projected_gradients_match_autograd_and_linearize_f():
    torch.manual_seed(0)
    model = TinyLM(TINY)
    tok = ByteTokenizer()
    ex = [tok.encode("the cat sat on the mat"), tok.encode("q: two plus two?", " four", 48)]
    n_params = sum(p.numel() for _, p in trainable(model))
    proj = Projector(n_params, 64, seed=3, block=5000)
    f, g = projected_gradients(model, ex, proj, chunk=2)
    P = _explicit_p(proj)
    for i, e in enumerate(ex):
        ids, mask = collate([e])
        out = outputs(model, ids, mask)[0]
        grads = torch.autograd.grad(out, [p for _, p in trainable(model)])
        flat = torch.cat([q.reshape(-1) for q in grads])
        assert abs(f[i] - float(out.detach())) < 1e-6
        assert np.allclose(g[i], (flat @ P).numpy(), atol=1e-5)
    # first order: f(θ + P z) - f(θ) ≈ ĝᵀ z, the error shrinking quadratically with the step
    z = torch.tensor(np.random.default_rng(4).normal(size=64), dtype=torch.float32)
    errs = []
    for scale in (1e-2, 1e-3):
        moved = TinyLM(TINY)
        moved.load_state_dict(model.state_dict())
        delta = P @ (z * scale)
        with torch.no_grad():
            lo = 0
            for _, p in trainable(moved):
                p += delta[lo : lo + p.numel()].reshape(p.shape)
                lo += p.numel()
        ids, mask = collate([ex[0]])
        actual = float(outputs(moved, ids, mask)[0].detach()) - f[0]
        errs.append(abs(actual - float(g[0] @ (z.numpy() * scale))))
    assert errs[1] < errs[0] / 20 + 1e-6


# --------------------------------------------------------------------------- estimates, search


def planted_store(seed: int = 0) -> GradientStore:
    """Task 0's gradients point along the target's; task 1's against; tasks 2-4 are noise."""
    rng = np.random.default_rng(seed)
    d, per = 8, 30
    u = np.eye(d)[0]
    gs, task_of = [], []
    for t, direction in enumerate([u, -u, None, None, None]):
        base = rng.normal(scale=0.3, size=(per, d))
        gs.append(base + (direction if direction is not None else 0))
        task_of += [t] * per
    g = np.vstack(gs)
    f = rng.normal(-0.5, 0.2, size=len(g))
    tg = rng.normal(scale=0.3, size=(20, d)) + u
    tf = rng.normal(-0.5, 0.2, size=20)
    return GradientStore(f, g, task_of, [f"t{i}" for i in range(5)], tf, tg)


def test_estimates_follow_the_planted_tasks():
    store = planted_store()
    est = SubsetEstimator(store, lam=0.5)
    none = est.estimate([])
    assert none == pytest.approx(no_update_loss(store))
    assert est.estimate([0]) < none < est.estimate([1])
    assert est.estimate([0]) < est.estimate([0, 1])
    assert forward_selection(est) == [0]
    chosen, ens = choose(est, "top-k", k=1, m=200, alpha=0.4, seed=0)
    assert chosen == [0] and ens is not None
    assert ens.coef[0] < 0 < ens.coef[1]
    assert np.argmax(ens.scores) == 1
    thr, _ = choose(est, "threshold", m=200, alpha=0.4, seed=0)
    assert 0 in thr and 1 not in thr
    sim = gradient_similarity(store)
    assert np.argmax(sim) == 0 and np.argmin(sim) == 1
    with pytest.raises(TunesiftError, match="unknown selection rule"):
        choose(est, "best")
    with pytest.raises(TunesiftError, match="out of range"):
        est.estimate([7])


def test_ensemble_is_seeded_and_ols_fits_an_additive_truth():
    store = planted_store()
    est = SubsetEstimator(store, lam=0.5)
    a = random_ensemble(est, 60, 0.4, seed=3)
    b = random_ensemble(est, 60, 0.4, seed=3)
    assert a.subsets == b.subsets and np.array_equal(a.estimates, b.estimates)
    assert random_subsets(5, 10, 0.4, 3) == a.subsets[:10]
    pred = a.intercept + np.array([a.coef[s].sum() for s in a.subsets])
    assert np.corrcoef(pred, a.estimates)[0, 1] > 0.9


def test_calibration_recovers_the_lambda_that_made_the_losses():
    store = planted_store(1)
    subsets = [[0], [1, 2], [0, 3, 4], [2, 3]]
    true = [SubsetEstimator(store, 0.3).estimate(s) for s in subsets]
    grid = [0.01, 0.1, 0.3, 1, 10]
    cal = calibrate_lambda(store, subsets, true, grid=grid, offset=False)
    assert cal.lam == 0.3 and cal.offset == 0 and cal.errors[0.3] < 1e-20
    # a constant shift of every true loss is the offset, and λ is still found
    shifted = calibrate_lambda(store, subsets, [t + 0.2 for t in true], grid=grid)
    assert shifted.lam == 0.3 and shifted.offset == pytest.approx(0.2)
    est = SubsetEstimator(store, shifted.lam, shifted.offset)
    assert est.estimate(subsets[0]) == pytest.approx(true[0] + 0.2)
    assert est.estimate([]) == pytest.approx(no_update_loss(store))  # no fine-tune, no offset
    with pytest.raises(TunesiftError, match="one true loss per subset"):
        calibrate_lambda(store, subsets, true[:2])
    with pytest.raises(TunesiftError, match="non-empty"):
        calibrate_lambda(store, [[]], [1.0])


def test_store_round_trip(tmp_path):
    store = planted_store()
    store.meta = {"seed": 0}
    path = store.save(tmp_path / "store")
    back = GradientStore.load(path)
    assert back.names == store.names and back.meta == {"seed": 0}
    for k in ("f", "g", "task_of", "target_f", "target_g"):
        assert np.array_equal(getattr(back, k), getattr(store, k))
    with pytest.raises(TunesiftError, match="cannot read"):
        GradientStore.load(tmp_path / "missing")
    with pytest.raises(TunesiftError, match="no examples"):
        GradientStore(store.f, store.g, np.zeros(len(store.f)), ["a", "b"], store.target_f,
                      store.target_g)  # fmt: skip


# ---------------------------------------------------------------------------------- data


def test_byte_tokenizer_supervises_the_response_only():
    tok = ByteTokenizer()
    e = tok.encode("hi")
    assert e.ids == (256, 104, 105) and e.start == 1
    pr = tok.encode("Q?", " yes")
    assert pr.ids[: pr.start] == (256, 81, 63) and bytes(pr.ids[pr.start :]) == b" yes"
    # a prompt longer than the window is cut from the left; the response keeps its tokens
    long = tok.encode("x" * 100, "ab", max_length=10)
    assert len(long.ids) == 10 and bytes(long.ids[long.start :]) == b"ab"
    ids, mask = collate([pr])
    assert mask.sum() == 4 and mask[0, pr.start - 1]
    with pytest.raises(TunesiftError, match="empty response"):
        tok.encode("Q", "")


def test_task_files_report_bad_records_with_their_line(tmp_path):
    good = tmp_path / "a.jsonl"
    good.write_text('{"text": "hello"}\n{"prompt": "p", "response": "r"}\n')
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"text": "fine"}\n{"label": 3}\n')
    tok = ByteTokenizer()
    assert len(read_task_file(good, tok)) == 2
    with pytest.raises(TunesiftError, match=r"b\.jsonl:2"):
        read_task_file(bad, tok)
    assert set(task_files(tmp_path)) == {"a", "b"}
    with pytest.raises(TunesiftError, match="at least two"):
        task_files([good])


# ------------------------------------------------------------------------------ end to end


def _texts(word: str, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(word * int(k) for k in rng.integers(1, 4, size=6)) for _ in range(n)]


@pytest.fixture(scope="module")
def fitted() -> GradEx:
    torch.set_num_threads(1)
    tok = ByteTokenizer()
    enc = lambda ts: [tok.encode(t, max_length=TINY.context) for t in ts]  # noqa: E731
    tasks = {"ab": enc(_texts("ab", 24, 0)), "xy": enc(_texts("xy", 24, 1)),
             "qz": enc(_texts("qz", 24, 2))}  # fmt: skip
    target = enc(_texts("ab", 12, 3))
    cfg = TrainConfig(steps=30, batch_size=8, lr=3e-3)
    gx = GradEx(TinyLM(TINY), meta=cfg, finetune=TrainConfig(steps=10, batch_size=8, lr=1e-3),
                projection_dim=32, seed=0)  # fmt: skip
    return gx.fit(tasks, target)


def test_gradex_end_to_end_prefers_the_target_like_task(fitted):
    gx = fitted
    assert gx.store_.g.shape == (72, 32) and gx.store_.target_g.shape == (12, 32)
    cal = gx.calibrate(n_subsets=2, alpha=0.34, seed=1)
    assert cal["lam"] == gx.lam_ and len(cal["true"]) == 2
    assert len({tuple(s) for s in cal["subsets"]}) == 2  # distinct: no fine-tune spent twice
    est = gx.estimator()
    assert est.estimate([0]) < est.estimate([1]) and est.estimate([0]) < est.estimate([2])
    chosen, _ = gx.choose("top-k", k=1, m=50, alpha=0.34)
    assert chosen == [0]
    # the real fine-tune agrees: the target-like task lowers the target loss most
    assert gx.true_loss([0]) < min(gx.true_loss([1]), gx.true_loss([2]))
    assert gx.true_loss([]) == pytest.approx(no_update_loss(gx.store_))
    val = gx.validate(n_subsets=3, alpha=0.34, seed=2)
    assert len(val.true) == len(val.estimated) == len(val.subsets) <= 3
    assert not {tuple(s) for s in val.subsets} & {tuple(s) for s in cal["subsets"]}
    assert {"no update", "mean of calibration"} <= set(val.others)
    assert json.dumps(val.to_dict())
    model = gx.finetune_base([0])
    assert any(not torch.equal(a, b) for a, b in
               zip(model.parameters(), gx.base_model.parameters(), strict=True))  # fmt: skip


def test_same_seed_same_store(fitted):
    tok = ByteTokenizer()
    again = GradEx(TinyLM(TINY), meta=fitted.meta, finetune=fitted.finetune, projection_dim=32,
                   seed=0)  # fmt: skip
    again.fit({n: t for n, t in zip(fitted.names_, fitted.tasks_, strict=True)}, fitted.target_)
    assert np.array_equal(again.store_.g, fitted.store_.g)
    assert np.array_equal(again.store_.f, fitted.store_.f)
    with pytest.raises(TunesiftError, match="at least two tasks"):
        GradEx(TinyLM(TINY)).fit({"a": [tok.encode("x")]}, [tok.encode("y")])


# ------------------------------------------------------------------------------------ CLI


def test_cli_selects_reuses_its_fit_and_validates(tmp_path, capsys):
    from tunesift.cli.main import main

    folder = tmp_path / "tasks"
    folder.mkdir()
    for name, word in (("ab", "ab"), ("xy", "xy"), ("qz", "qz")):
        (folder / f"{name}.jsonl").write_text(
            "".join(json.dumps({"text": t}) + "\n" for t in _texts(word, 10, 0))
        )
    target = tmp_path / "target.jsonl"
    target.write_text("".join(json.dumps({"text": t}) + "\n" for t in _texts("ab", 6, 1)))
    common = ["--tasks", str(folder), "--target", str(target), "--target-test", str(target),
              "--projection-dim", "16", "--max-length", "32", "--meta-steps", "4",
              "--finetune-steps", "2", "--final-steps", "2", "--calibrate", "2", "--subsets",
              "20", "--threads", "1", "--out", str(tmp_path / "out"), "-q"]  # fmt: skip
    assert main(["tasks", *common, "--k", "1"]) == 0
    out = capsys.readouterr().out
    assert "chose 1 of 3 tasks" in out and "target test token loss" in out
    report = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert len(report["selection"]["chosen"]) == 1 and report["lam"] > 0
    assert (tmp_path / "out" / "model.pt").exists()
    assert main(["tasks", "validate", *common[:-1], "--validate-subsets", "2"]) == 0
    captured = capsys.readouterr()
    assert "reusing the meta-initialization" in captured.err
    assert "| GradEx |" in captured.out and "| no update |" in captured.out
    # bad input: one line, no traceback
    assert main(["tasks", "--tasks", str(folder), "--target", str(tmp_path / "nope.jsonl")]) != 0
    assert "task file not found" in capsys.readouterr().err


def test_projection_cache_changes_nothing():
    x = torch.tensor(np.random.default_rng(5).normal(size=(4, 3000)), dtype=torch.float32)
    cached = Projector(3000, 50, seed=1, block=700)
    drawn = Projector(3000, 50, seed=1, block=700, cache_bytes=0)
    assert cached._cache is not None and drawn._cache is None
    assert torch.equal(cached(x), drawn(x)) and torch.equal(cached(x), drawn(x))
    assert len(cached._cache) == 5


# ----------------------------------------------------------------------------- Python API


def test_select_tasks_and_validate_from_python(tmp_path):
    from tunesift.tasks import TaskSelection, select_tasks, validate

    folder = tmp_path / "tasks"
    folder.mkdir()
    for name in ("ab", "xy", "qz"):
        (folder / f"{name}.jsonl").write_text(
            "".join(json.dumps({"text": t}) + "\n" for t in _texts(name, 10, 0))
        )
    target = tmp_path / "target.jsonl"
    target.write_text("".join(json.dumps({"text": t}) + "\n" for t in _texts("ab", 6, 1)))
    settings = dict(projection_dim=16, max_length=32, meta_steps=4, finetune_steps=2,
                    subset_size=0.34, threads=1, seed=0)  # fmt: skip
    lines: list[str] = []
    res = select_tasks(folder, target, target_test=target, k=1, subsets=20, final_steps=2,
                       calibrate=0, lam=0.37, cache_dir=tmp_path / "cache", log=lines.append,
                       **settings)  # fmt: skip
    assert isinstance(res, TaskSelection)
    assert res.names == ["ab", "qz", "xy"] and len(res.chosen) == 1
    assert res.chosen == [res.names[i] for i in res.indices]
    # λ is a parameter now, not an attribute set from outside after fit
    assert res.lam == res.gradex.lam_ == res.report["lam"] == 0.37
    assert set(res.scores) == set(res.ols) == set(res.names)
    assert res.report["selection"]["chosen"] == res.chosen
    t = res.report["target_test"]
    assert t["chosen"]["token_loss"] < t["base"]["token_loss"]
    assert any(not torch.equal(a, b) for a, b in
               zip(res.model.parameters(), res.base_model.parameters(), strict=True))  # fmt: skip
    assert res.fit_dir is not None and (res.fit_dir / "store.npz").exists()
    assert json.dumps(res.report, default=float)
    # validate reuses the same fit (same inputs and settings), calibrates, and compares
    lines.clear()
    val = validate(folder, target, n_subsets=2, calibrate=2, cache_dir=tmp_path / "cache",
                   log=lines.append, **settings)  # fmt: skip
    assert val.fit_dir == res.fit_dir and val.gradex.reused_
    assert any("reusing the meta-initialization" in m for m in lines)
    assert len(val.validation.true) == len(val.validation.estimated) <= 2
    assert val.report["lam"] == val.report["calibration"]["lam"] == val.validation.lam
    assert "no update" in val.validation.others
    with pytest.raises(TunesiftError, match="rule must be one of"):
        select_tasks(folder, target, rule="best", **settings)
    with pytest.raises(TunesiftError, match=r"model 'nope\.pt' is not 'tiny', 'smollm2'"):
        select_tasks(folder, target, model="nope.pt", **settings)
