"""Issue 13: methods shaped like scikit-learn estimators, a runner that knows no method, and
errors that name what the caller used (Python parameters in the library, flags in the CLI)."""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest

import tunesift
from tunesift.cli.main import main
from tunesift.errors import InputError, NotFittedError, TunesiftError
from tunesift.methods import METHODS, Method, make_method
from tunesift.methods.base import PoolInfo
from tunesift.methods.budget import Budget, fill

SRC = Path(tunesift.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z]")


# --- errors name what the caller used --------------------------------------------------------


@pytest.fixture
def tiny_features(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.normal(size=(40, 3)).astype(np.float32))
    np.save(tmp_path / "Y.npy", rng.normal(size=(6, 3)).astype(np.float32))
    return tmp_path / "X.npy", tmp_path / "Y.npy"


def _cli_error(capsys, *argv: object) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_select_budget_zero_names_the_parameter_and_the_cli_names_the_flag(
    tiny_features, tmp_path, capsys
):
    x, y = tiny_features
    with pytest.raises(TunesiftError) as info:
        tunesift.select(pool_features=x, target_features=y, budget=0, method="random")
    msg = str(info.value)
    assert re.search(r"\bbudget\b", msg) and not FLAG.search(msg), msg
    assert info.value.param == "budget"
    err = _cli_error(
        capsys, "select", "--pool-features", x, "--target-features", y, "--budget", 0,
        "--method", "random", "--out", tmp_path / "o.jsonl", "-q",
    )  # fmt: skip
    assert "--budget " in err and "docs" not in err, err


def test_budget_errors_name_selects_parameters():
    with pytest.raises(TunesiftError, match="exactly one budget") as info:
        Budget()
    assert not FLAG.search(str(info.value))
    assert "budget_tokens" in str(info.value)
    with pytest.raises(TunesiftError, match="max_per_source") as info:
        Budget(docs=3, max_per_source=0)
    with pytest.raises(TunesiftError, match="max_per_source") as info:
        fill(np.arange(4), Budget(docs=2, max_per_source=1), sources=None)
    assert not FLAG.search(str(info.value))


def test_features_given_alone_name_both_parameters(tiny_features, tmp_path, capsys):
    x, _ = tiny_features
    with pytest.raises(TunesiftError) as info:
        tunesift.select(pool_features=x, budget=3, method="random")
    msg = str(info.value)
    assert "pool_features" in msg and "target_features" in msg and not FLAG.search(msg)
    err = _cli_error(
        capsys, "select", "--pool-features", x, "--budget", 3, "--method", "random",
        "--out", tmp_path / "o.jsonl", "-q",
    )  # fmt: skip
    assert "--pool-features" in err and "--target-features" in err, err


def test_selection_write_names_path_and_the_cli_names_out(tiny_features, tmp_path, capsys):
    x, y = tiny_features
    sel = tunesift.select(pool_features=x, target_features=y, budget=3, method="random")
    with pytest.raises(InputError) as info:
        sel.write(tmp_path / "o.txt")
    assert not FLAG.search(info.value.message) and "path" in info.value.message
    with pytest.raises(InputError) as info:
        sel.write_scores(tmp_path / "s.txt")
    assert not FLAG.search(info.value.message)
    err = _cli_error(
        capsys, "select", "--pool-features", x, "--target-features", y, "--budget", 3,
        "--method", "random", "--out", tmp_path / "o.txt", "-q",
    )  # fmt: skip
    assert "--out must end with" in err and "o.txt" in err, err


def _error_strings(tree: ast.AST):
    """String pieces of every ``...Error(...)`` / ``Problem(...)`` call's arguments."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        name = (
            fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
        )
        if not (name.endswith("Error") or name == "Problem"):
            continue
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            for sub in ast.walk(arg):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    yield node.lineno, sub.value


def test_no_library_error_names_a_cli_flag():
    """Outside ``cli/``, error messages name Python parameters, never flags."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if "cli" in path.relative_to(SRC).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, text in _error_strings(tree):
            # a shell command the user should run ("pip install --no-deps ...") is not a flag of ours
            if FLAG.search(text) and "pip install" not in text:
                offenders.append(f"{path.relative_to(SRC)}:{line}: {text!r}")
    assert not offenders, "\n".join(offenders)


def test_random_on_bare_features_knows_the_pool_size(tiny_features):
    """Bare feature rows are the pool: a method that reads no features still needs their count."""
    x, y = tiny_features
    sel = tunesift.select(pool_features=x, target_features=y, budget=5, method="random")
    assert len(sel.indices) == 5 and sel.pool_size == 40


# --- estimators like scikit-learn's ----------------------------------------------------------

WORDS = (
    "cat dog bird fish wolf fox bear owl lion seal crab frog mouse horse goat sheep apple pear "
    "plum grape lemon melon olive bean corn rice wheat oat river lake sea hill stone cloud rain"
).split()


def _texts(rng: np.random.Generator, n: int, words: list[str]) -> list[str]:
    return [" ".join(rng.choice(words, size=int(rng.integers(8, 20)))) for _ in range(n)]


@pytest.fixture(scope="module")
def data():
    """Tiny pool and target, as features and as texts, plus rows never seen by ``fit``."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 8)).astype(np.float32)
    y = (rng.normal(size=(12, 8)) + 1.0).astype(np.float32)
    x_new = rng.normal(size=(25, 8)).astype(np.float32)
    t_pool, t_target = _texts(rng, 90, WORDS), _texts(rng, 12, WORDS[:12])
    t_new = _texts(rng, 25, WORDS)
    sources = np.repeat(np.arange(3), 30).astype(np.int32)
    quality = rng.normal(size=90)
    return dict(x=x, y=y, x_new=x_new, t_pool=t_pool, t_target=t_target, t_new=t_new,
                sources=sources, quality=quality)  # fmt: skip


#: small hyper-parameters so that every method fits in well under a second
SMALL = {"kmq": {"n_clusters": 3, "quality_field": "q"}, "d4": {"n_clusters": 3}}
#: the gradient methods on a byte-level TinyLM: one short warm-up epoch, a small projection
_GRADS = dict(model="tinylm", epochs=1, warmup_fraction=0.1, lr=1e-3, projection_dim=32,
              max_length=24, device="cpu", threads=1)  # fmt: skip
SMALL.update(less=_GRADS, tagcos={**_GRADS, "n_clusters": 3})
#: the loss methods on a byte-level TinyLM: two updates per fine-tune
_LOSSES = dict(model="tinylm", steps=2, batch_size=4, max_length=24, device="cpu",
               threads=1)  # fmt: skip
SMALL.update({"color-filter": {**_LOSSES, "prior_steps": 2}, "learnability": _LOSSES})
SMALL["s2l"] = {**_LOSSES, "n_clusters": 3, "n_checkpoints": 2}
SMALL["dsdm"] = {**_GRADS, "lambda_reg": 0.1}


def _inputs(m, data, new: bool = False):
    """What ``fit``/``score`` take for this method: features, texts, or nothing."""
    if m.inputs == "features":
        return data["x_new" if new else "x"], data["y"]
    if m.inputs == "texts":
        return data["t_new" if new else "t_pool"], data["t_target"]
    n = len(data["x_new" if new else "x"])
    return np.empty((n, 0), np.float32), None


def _info(data, pool):
    n = len(pool)
    return PoolInfo(
        size=n,
        sources=data["sources"][:n],
        source_names=("a", "b", "c"),
        features=pool if np.ndim(pool) == 2 and np.shape(pool)[1] else None,
        columns={"q": data["quality"][:n]},
    )


def _fitted(name, data):
    m = make_method(name, **SMALL.get(name, {}))
    pool, target = _inputs(m, data)
    return m.fit(None if m.inputs == "none" else pool, target), pool


ALL = sorted(METHODS)


@pytest.mark.parametrize("name", ALL)
def test_params_come_from_the_init_signature(name):
    cls = METHODS[name]
    assert "_param_names" not in vars(cls), f"{name} keeps a hand-written parameter list"
    m = cls()
    names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert list(m.get_params()) == names
    assert m.get_params() == cls.default_params()
    assert m.set_params(seed=7) is m and m.get_params()["seed"] == 7
    with pytest.raises(TunesiftError, match="no parameter 'nope'"):
        m.set_params(nope=1)
    clone = cls(**m.get_params())
    assert clone.get_params() == m.get_params()


@pytest.mark.parametrize("name", ALL)
def test_every_method_refuses_score_order_and_save_before_fit(name, data, tmp_path):
    m = make_method(name, **SMALL.get(name, {}))
    pool, _ = _inputs(m, data)
    with pytest.raises(NotFittedError, match="before fit"):
        m.score(pool)
    with pytest.raises(NotFittedError, match="before fit"):
        m.order(np.zeros(len(pool)), _info(data, pool))
    with pytest.raises(NotFittedError, match="before fit"):
        m.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def _documented_attributes(cls) -> set[str]:
    doc = inspect.getdoc(cls) or ""
    assert "Attributes\n----------" in doc, f"{cls.__name__} documents no fitted attributes"
    section = doc.split("Attributes\n----------", 1)[1]
    return set(re.findall(r"\b([a-z][a-z0-9_]*_)\b", section))


@pytest.mark.parametrize("name", ALL)
def test_fitted_attributes_are_documented(name, data):
    m, pool = _fitted(name, data)
    m.order(m.score(pool), _info(data, pool))  # some attributes are set by order
    undocumented = set(m.fitted_state()) - _documented_attributes(type(m))
    assert not undocumented, f"{name}: {sorted(undocumented)} missing from 'Attributes'"


@pytest.mark.parametrize("name", ALL)
def test_save_load_scores_new_rows_identically(name, data, tmp_path):
    """A fit is reused on new shards: fit, save, load, score rows fit never saw -> same scores."""
    m, pool = _fitted(name, data)
    path = m.save(tmp_path / f"{name}.npz")
    loaded = type(m).load(path)
    again = Method.load(path)  # the class is found from the file
    assert type(loaded) is type(m) and type(again) is type(m)
    assert loaded.get_params() == m.get_params()
    new, _ = _inputs(m, data, new=True)
    expected = m.score(new)
    np.testing.assert_array_equal(loaded.score(new), expected)
    np.testing.assert_array_equal(again.score(new), expected)
    # the order (the method's rule over the scores) and the diagnostics follow the same state
    info = _info(data, pool)
    np.testing.assert_array_equal(loaded.order(m.score(pool), info), m.order(m.score(pool), info))
    assert json.dumps(loaded.diagnostics(), default=str) == json.dumps(m.diagnostics(), default=str)
    # no pickle: the archive loads with allow_pickle=False and names the method in its JSON
    with np.load(path, allow_pickle=False) as z:
        assert json.loads(str(z["meta.json"][()]))["state"]["__method__"] == name


def test_load_refuses_another_method_and_other_files(data, tmp_path):
    m, _ = _fitted("random", data)
    path = m.save(tmp_path / "random.npz")
    with pytest.raises(InputError, match="not a DSIR"):
        METHODS["dsir"].load(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a saved tunesift method"):
        Method.load(tmp_path / "junk.npz")


# --- the runner knows no method ----------------------------------------------------------------


class _Probe(Method):
    """A method the runner has never heard of: takes the run's device, reports on its selection.

    Attributes
    ----------
    n_fit_ : int
    """

    name = "probe"

    def __init__(self, device: str = "cpu", progress: bool = False, seed: int = 0):
        self.device, self.progress, self.seed = device, progress, seed

    def fit(self, pool, target):
        self.n_fit_ = len(pool)
        return self

    def score(self, pool):
        self.check_is_fitted()
        return np.arange(len(pool), dtype=np.float64)

    def describe_selection(self, pool, target, indices):
        return {"probe_selected": int(len(indices)), "probe_pool": int(len(pool))}


def test_runner_passes_run_settings_by_signature_and_asks_the_method_about_its_selection(
    tiny_features, monkeypatch
):
    from tunesift import api

    monkeypatch.setitem(METHODS, "probe", _Probe)
    m = api.build_method("probe", {}, seed=3, device="cuda", progress=True)
    assert (m.device, m.progress, m.seed) == ("cuda", True, 3)
    assert (
        api.build_method("probe", {"device": "cpu"}, seed=0, device="cuda", progress=False).device
        == "cpu"
    )
    # a method without a device parameter gets none (kMQ would reject it)
    assert (
        "device"
        not in api.build_method("kmq", {}, seed=0, device="cuda", progress=True).get_params()
    )
    x, y = tiny_features
    sel = tunesift.select(
        pool_features=x, target_features=y, budget=4, method="probe", device="cpu"
    )
    assert sel.diagnostics["probe_selected"] == 4 and sel.diagnostics["probe_pool"] == 40
    assert sel.indices.tolist() == [39, 38, 37, 36]
    assert "progress" not in sel.params  # display-only: not provenance


def test_api_and_compare_name_no_method_and_repeat_no_default():
    from tunesift import comparison
    from tunesift.methods.gotd import GOTD

    code = (SRC / "api.py").read_text()
    assert 'name == "gotd"' not in code and "eps_absolute" not in code and "sinkhorn(" not in code
    assert comparison.OT_EPSILON == GOTD().epsilon
    assert "0.05" not in (SRC / "comparison.py").read_text()


def test_gotd_reports_the_ot_cost_of_its_selection(tiny_features):
    x, y = tiny_features
    sel = tunesift.select(
        pool_features=x, target_features=y, budget=10, method="gotd", device="cpu"
    )
    d = sel.diagnostics
    assert d["ot_cost_target_pool"] == d["ot_cost"]
    assert d["ot_cost_target_selection"] < d["ot_cost_target_pool"]


# --- one budget check ---------------------------------------------------------------------------


def test_one_budget_check_before_embedding_and_in_fill(tmp_path, tiny_features):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(5)))
    with pytest.raises(InputError) as early:
        tunesift.select(pool, pool, budget=6, method="random")  # fails before any featurizing
    with pytest.raises(InputError) as late:
        fill(np.arange(5), Budget(docs=6))
    assert (
        early.value.message
        == late.value.message
        == ("budget 6 is more than the 5 documents the pool can give")
    )
    assert str(early.value).startswith(str(pool)) and early.value.params() == ("budget",)
    # bare features: no records to count early, the same check in fill
    x, y = tiny_features
    with pytest.raises(InputError, match="budget 41 is more than the 40 documents"):
        tunesift.select(pool_features=x, target_features=y, budget=41, method="random")
    # the test helper Method.select cuts through fill as well
    m, _ = _fitted("random", {"x": np.zeros((5, 1))})
    with pytest.raises(TunesiftError, match="budget must be a positive integer"):
        m.select(np.zeros(5), 0)
    with pytest.raises(InputError, match="budget 6 is more than"):
        m.select(np.zeros(5), 6)


def test_cli_renders_every_parameter_an_error_names():
    from tunesift.cli.errors import render_error

    with pytest.raises(InputError) as info:
        fill(np.arange(4), Budget(docs=3, max_per_source=1), sources=np.array([0, 0, 1, 1]))
    assert info.value.message == (
        "budget 3 is more than the 2 documents the pool can give under max_per_source 1"
    )
    assert render_error(info.value) == (
        "--budget 3 is more than the 2 documents the pool can give under --max-per-source 1"
    )
    with pytest.raises(TunesiftError) as info:
        Budget(docs=None, tokens=None)
    assert render_error(info.value).startswith("--budget (documents) or --budget-tokens:")
    # a name the mapping does not hold (a method hyper-parameter) stays as the library wrote it
    assert (
        render_error(TunesiftError("tol must be positive", param="tol")) == "tol must be positive"
    )
    # a dotted name (a field of a dataclass the caller built) maps as a whole
    err = TunesiftError("no reservoir (give UserTask.unlabeled)", param="UserTask.unlabeled")
    assert render_error(err) == "no reservoir (give --task-unlabeled)"


def test_methods_are_found_by_the_name_they_declare():
    """``load`` and CCS find a method by name without the registry (no import cycle); a
    subclass that only inherits a name (a test's variant) is not the method."""
    from tunesift.methods.base import method_class
    from tunesift.methods.gotd import GOTD

    class QuietGOTD(GOTD):
        pass

    assert method_class("gotd") is GOTD
    assert all(method_class(name) is cls for name, cls in METHODS.items())
    with pytest.raises(TunesiftError, match="score must be 'field:NAME' or a feature method"):
        make_method("ccs", score_by="dsir").fit(np.zeros((3, 2)), np.zeros((1, 2)))


def test_set_params_cannot_slip_past_validation_and_errors_name_the_hyper_parameter():
    m = make_method("zipfit").set_params(level=99)
    with pytest.raises(TunesiftError, match="level must be an integer from 0 to 9") as info:
        m.fit(None, ["some target text"])
    assert info.value.param == "level"
    from tunesift.cli.errors import render_error

    with pytest.raises(TunesiftError) as info:
        make_method("gotd", ot_mode="fast").fit(np.zeros((3, 2)), np.ones((2, 2)))
    assert render_error(info.value).startswith("--ot-mode must be auto, exact or sampled")
