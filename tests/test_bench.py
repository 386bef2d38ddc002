"""`tunesift bench`: labeled targets, the seeded target sample, the oracle, paired intervals,
resuming a killed bench, and a user's own task."""

import csv
import dataclasses
import hashlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tunesift.cli.main import main
from tunesift.corpora import build as corpora_build
from tunesift.errors import TunesiftError
from tunesift.evaluate.bench import (
    PRESETS,
    BenchRow,
    UserTask,
    build_pool,
    build_task,
    build_user_task,
    compare_rows,
    interval_table,
    restrict,
    run_bench,
    run_key,
)
from tunesift.evaluate.fast import FastConfig
from tunesift.evaluate.harness import BASELINE

corpora = pytest.mark.skipif(
    not corpora_build.sources_available(["fortunes", "gcide", "debian", "foldoc"]),
    reason="Debian corpora not installed (run scripts/setup.sh)",
)


def _fold(t):
    return " ".join(t.lower().split())


@corpora
def test_tasks_fixed_test_split_seeded_target_sample_and_oracle_never_in_the_pool():
    """Issues 5 and 14: test fixed across seeds, the target sample drawn with the seed from the
    labeled train split, the oracle's reservoir disjoint from both and from the pool."""
    spec = PRESETS["causal"]
    assert spec.train_per_label >= 64 and spec.test_per_label >= 100
    # two of the four targets (the small sources; GCIDE and Debian hold thousands per label)
    tasks = [build_task(spec, t) for t in spec.tasks if t.source in ("fortunes", "foldoc")]
    assert len(tasks) == 2
    for bt in tasks:
        task = bt.task
        assert set(Counter(task.train_labels).values()) == {spec.train_per_label}
        assert set(Counter(task.test_labels).values()) == {spec.test_per_label}
        train, test = {_fold(t) for t in task.train_texts}, {_fold(t) for t in task.test_texts}
        reservoir = {_fold(t) for t in bt.reservoir}
        assert not train & test and not reservoir & (train | test)
        # enough in-domain texts for the oracle at the largest budget, under two seeds
        assert len(bt.reservoir) >= max(spec.budgets)
        s0, s1 = bt.target_sample(spec.target_size(), 0), bt.target_sample(spec.target_size(), 1)
        assert len(s0) == spec.target_size() * 4 and s0 != s1
        assert {_fold(t) for t in s0 + s1} <= train
        assert s0 == bt.target_sample(spec.target_size(), 0)
        o0, o1 = bt.oracle(100, 0), bt.oracle(100, 1)
        assert len(o0) == 100 and o0 != o1 and {_fold(t) for t in o0} <= reservoir
    # other methods or budgets (a preset run in parts) keep the same splits and reservoir
    again = build_task(restrict(spec, methods=["random"], budgets=[5]), spec.tasks[0])
    assert again.task.test_texts == tasks[0].task.test_texts
    assert again.reservoir == tasks[0].reservoir
    small = type(spec)(**{**spec.__dict__, "pool_per_source": 300})
    pool = {_fold(r["text"]) for r in build_pool(small, tasks)}
    for bt in tasks:
        assert not pool & {_fold(t) for t in bt.task.train_texts + bt.task.test_texts}
        assert not pool & {_fold(t) for t in bt.reservoir}
    # the pool still holds other texts of the tasks' sources: the in-domain data to find
    assert len(pool) > 2000


@corpora
def test_bench_smoke_preset_end_to_end(tmp_path, shared_cache, capsys):
    out = tmp_path / "bench"
    rc = main(["bench", "--preset", "smoke", "--out", str(out), "--cache-dir", str(shared_cache),
               "-q"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| fortunes-3 | no-pre-fine-tuning | - |" in printed
    assert "| fortunes-3 | oracle | 50 | fast | perplexity |" in printed
    result = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in result["rows"]} == {BASELINE, "dsir", "random", "oracle"}
    assert result["hyperparameters"]["fast"]["lam"] == 0.5
    assert "platform" in result["environment"] and result["environment"]["finished"]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 8 and all(float(r["value"]) > 1 for r in rows)
    # per-item arrays are kept, so intervals can be recomputed from results.json
    row = result["rows"][1]
    assert len(row["per_item"]["test_nll"]) == 60
    tokens = sum(row["per_item"]["test_tokens"])
    assert math.exp(sum(row["per_item"]["test_nll"]) / tokens) == pytest.approx(
        row["metrics"]["perplexity"], rel=1e-9
    )
    refs = {(c["method"], c["reference"]) for c in result["comparisons"]}
    assert ("dsir", "random") in refs and ("oracle", BASELINE) in refs
    assert ("random", "random") not in refs
    # the target sample changes with the seed, so even DSIR (deterministic) picks differently
    dsir = [r for r in result["rows"] if r["method"] == "dsir"]
    assert dsir[0]["metrics"] != dsir[1]["metrics"]
    assert (out / "fortunes-3" / "target-s1.jsonl").exists()


def test_bench_restricts_a_preset_and_rejects_unknown_names(capsys):
    one = restrict(PRESETS["cpu"], tasks=["foldoc"], methods=["random", "oracle"],
                   modes=["fast"], budgets=[10], seeds=[4, 5])  # fmt: skip
    assert one.only_tasks == ("foldoc",) and one.methods == ("random", "oracle")
    assert len(one.tasks) == 4  # the pool still excludes every task's texts
    assert one.budgets == (10,) and one.seeds == (4, 5)
    for flags, message in ((["--tasks", "nope"], "no task 'nope'"),
                           (["--methods", "nope"], "unknown method"),
                           (["--modes", "decoder"], "unknown mode"),
                           (["--budgets", "1,x"], "--budgets expects integers"),
                           (["--methods", "gotd,random", "--against", "dsir"],
                            "--against 'dsir' is not a method of this bench"),
                           (["--task-train", "a.jsonl"], "needs --pool and --task-test"),
                           (["--task-unlabeled", "u.jsonl"], "needs --task-train"),
                           (["--task-name", "mine"], "--task-name needs --task-train")):  # fmt: skip
        assert main(["bench", "--preset", "cpu", *flags, "-q"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def _row(method, seed, metrics, per_item, budget=100, mode="causal"):
    b = None if method == BASELINE else budget
    return BenchRow("t", method, b, seed, mode, metrics, 0.0, 0.0, per_item)


def _causal_items(rng, n, shift, acc):
    """Per-item arrays in the shape causal mode writes (test_nll, test_tokens, correct, pred)."""
    tokens = [rng.randint(5, 30) for _ in range(n)]
    nll = [t * (4.6 - shift + rng.gauss(0, 0.2)) for t in tokens]
    correct = [1 if rng.random() < acc else 0 for _ in range(n)]
    return {"test_nll": nll, "test_tokens": tokens, "correct": correct, "pred": correct}


def _metrics(items):
    ppl = math.exp(sum(items["test_nll"]) / sum(items["test_tokens"]))
    return {"perplexity": ppl, "accuracy": sum(items["correct"]) / len(items["correct"]),
            "macro_f1": 0.5}  # fmt: skip


def test_intervals_against_random_and_baseline_from_per_item_arrays():
    rng = random.Random(0)
    rows = []
    for seed in (0, 1, 2):
        for method, shift, acc in ((BASELINE, 0.0, 0.5), ("random", 0.02, 0.55),
                                   ("gotd", 0.1, 0.75)):  # fmt: skip
            items = _causal_items(rng, 200, shift, acc)
            rows.append(_row(method, seed, _metrics(items), items))
    comps = compare_rows(rows, n_boot=300)
    got = {(c["method"], c["reference"], c["metric"]): c for c in comps}
    ppl = got[("gotd", "random", "perplexity")]
    assert ppl["absolute"]["kind"] == "bootstrap" and ppl["absolute"]["significant"]
    assert ppl["absolute"]["high"] < 0 and -10 < ppl["percent"]["estimate"] < -6
    acc = got[("gotd", BASELINE, "accuracy")]
    assert acc["absolute"]["kind"] == "bootstrap" and acc["absolute"]["low"] > 0.15
    # macro-F1 has no per-item form here: a t-interval over the seeds (all equal: width 0)
    assert got[("gotd", "random", "macro_f1")]["absolute"]["kind"] == "t"
    assert ("random", "random", "perplexity") not in got
    table = interval_table(comps)
    line = next(x for x in table.splitlines() if x.startswith("| t | gotd | 100 | causal | acc"))
    assert line.count("*") == 2  # significant against both references, in points
    assert "[+" in line and not line.endswith(" t |")


def test_against_adds_a_paired_reference_method_beside_random():
    rng = random.Random(1)
    rows = []
    for seed in (0, 1, 2):
        for method, shift, acc in ((BASELINE, 0.0, 0.5), ("random", 0.0, 0.5),
                                   ("dsir", 0.05, 0.6), ("gotd", 0.15, 0.8)):  # fmt: skip
            items = _causal_items(rng, 200, shift, acc)
            rows.append(_row(method, seed, _metrics(items), items))
    comps = compare_rows(rows, n_boot=300, against=("dsir",))
    got = {(c["method"], c["reference"], c["metric"]): c for c in comps}
    assert ("dsir", "dsir", "accuracy") not in got and ("random", "dsir", "accuracy") in got
    # gotd − dsir is the same paired statistic as gotd − random, against another row
    direct = compare_rows([r for r in rows if r.method in ("gotd", "dsir")], n_boot=300)
    assert direct == []  # neither random nor the baseline: nothing to pair with by default
    gd = got[("gotd", "dsir", "accuracy")]["absolute"]
    gr = got[("gotd", "random", "accuracy")]["absolute"]
    assert gd["significant"] and 0 < gd["estimate"] < gr["estimate"]
    assert compare_rows(rows, n_boot=300) == [c for c in comps if c["reference"] != "dsir"]
    header = next(x for x in interval_table(comps).splitlines() if x.startswith("| task"))
    assert header.endswith(
        "| − random | − dsir | − no-pre-fine-tuning |".replace("no-pre-fine-tuning", BASELINE)
    )
    line = next(x for x in interval_table(comps).splitlines()
                if x.startswith("| t | gotd | 100 | causal | accuracy"))  # fmt: skip
    assert line.count("*") == 3
    spec = restrict(PRESETS["causal"], methods=["gotd", "dsir", "random"], against=["dsir"])
    assert spec.against == ("dsir",)


def test_no_per_item_arrays_fall_back_to_a_t_interval():
    rows = [_row(BASELINE, s, {"accuracy": a}, {}, mode="encoder") for s, a in ((0, 0.5), (1, 0.7))]
    rows += [_row("gotd", s, {"accuracy": a}, {}, mode="encoder") for s, a in ((0, 0.6), (1, 0.6))]
    (c,) = compare_rows(rows)
    assert c["reference"] == BASELINE and c["absolute"]["kind"] == "t"
    assert c["absolute"]["estimate"] == pytest.approx(0.0)
    assert not c["absolute"]["significant"]
    assert "| t | gotd | 100 | encoder | accuracy | - | +0.00 [" in interval_table([c])


# ---- a user's task, resuming --------------------------------------------------------------------

WORDS = {
    "astro": "star planet orbit galaxy comet telescope moon nebula",
    "cook": "oven flour butter sugar recipe bake simmer salt",
}
OTHER = "law court judge contract verdict appeal statute clause".split()


def _sentences(rng, words, n):
    return [" ".join(rng.choice(words) for _ in range(8)) + f" #{rng.randrange(10**6)}"
            for _ in range(n)]  # fmt: skip


def _user_files(tmp_path):
    rng = random.Random(0)
    split = {"train": 12, "test": 20}
    paths = {}
    for name, n in split.items():
        rows = [{"text": t, "label": lab} for lab, w in WORDS.items()
                for t in _sentences(rng, w.split(), n)]  # fmt: skip
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    pool = [
        {"text": t, "source": "in"} for w in WORDS.values() for t in _sentences(rng, w.split(), 40)
    ]
    pool += [{"text": t, "source": "out"} for t in _sentences(rng, OTHER, 200)]
    # one of the test texts sneaked into the pool: bench drops it
    pool.append({"text": json.loads(paths["test"].read_text().splitlines()[0])["text"]})
    paths["pool"] = tmp_path / "pool.jsonl"
    paths["pool"].write_text("".join(json.dumps(r) + "\n" for r in pool))
    paths["unlabeled"] = tmp_path / "unlabeled.txt"
    paths["unlabeled"].write_text(
        "\n".join(t for w in WORDS.values() for t in _sentences(rng, w.split(), 30)) + "\n"
    )
    return paths


def _user_argv(paths, out, seeds="0,1,2"):
    return ["bench", "--task-train", str(paths["train"]), "--task-test", str(paths["test"]),
            "--pool", str(paths["pool"]), "--task-unlabeled", str(paths["unlabeled"]),
            "--modes", "fast", "--methods", "dsir,random,oracle", "--budgets", "20,60",
            "--seeds", seeds, "--out", str(out), "-q"]  # fmt: skip


def _stable(result):
    """results.json without what differs between identical runs (timings, dates)."""
    rows = [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in result["rows"]]
    return rows, result["comparisons"]


def test_user_task_runs_end_to_end_and_resumes_only_the_missing_run(tmp_path, capsys):
    paths = _user_files(tmp_path)
    out = tmp_path / "out"
    assert main(_user_argv(paths, out)) == 0
    printed = capsys.readouterr().out
    first = json.loads((out / "results.json").read_text())
    runs = sorted((out / "runs").rglob("*.json"))
    # 3 seeds x (baseline + 3 rows x 2 budgets), fast mode only
    assert first["executed"] == len(runs) == 21 and first["reused"] == 0
    assert first["pool"]["dropped_task_texts"] == 1
    assert "| train | oracle | 60 | fast | perplexity |" in printed
    oracle = next(c for c in first["comparisons"]
                  if c["method"] == "oracle" and c["budget"] == 60 and c["reference"] == "random")  # fmt: skip
    assert oracle["absolute"]["significant"] and oracle["absolute"]["estimate"] < 0
    # delete one finished run: the rerun computes that one only, and the results are the same
    runs[5].unlink()
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")}
    assert main(_user_argv(paths, out)) == 0
    second = json.loads((out / "results.json").read_text())
    assert second["executed"] == 1 and second["reused"] == 20
    # the unchanged pool, splits and target samples are left as they were: the feature cache
    # keys a corpus by its files' mtimes, so rewriting them would embed the pool again
    assert out / "pool.jsonl" in written
    assert {p: p.stat().st_mtime_ns for p in written} == written
    assert _stable(second) == _stable(first)
    # a changed protocol (another budget) reuses what still applies
    assert main([*_user_argv(paths, out), "--budgets", "20"]) == 0
    assert json.loads((out / "results.json").read_text())["executed"] == 0


def test_user_task_takes_the_name_given(tmp_path):
    paths = _user_files(tmp_path)
    out = tmp_path / "named"
    argv = [*_user_argv(paths, out, seeds="0"), "--budgets", "20", "--task-name", "fortunes-4"]
    assert main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    assert {r["task"] for r in result["rows"]} == {"fortunes-4"}
    assert (out / "runs" / "fortunes-4").is_dir() and (out / "fortunes-4" / "test.jsonl").is_file()


def test_killed_bench_continues_where_it_stopped(tmp_path):
    """SIGKILL a bench subprocess after a seeded number of finished runs; the rerun computes
    only the runs with no file, and its results equal an uninterrupted bench's."""
    paths = _user_files(tmp_path)
    seeds = ",".join(str(s) for s in range(12))  # 12 x 7 = 84 runs
    whole = tmp_path / "whole"
    assert main(_user_argv(paths, whole, seeds)) == 0
    expected = json.loads((whole / "results.json").read_text())
    assert expected["executed"] == 84

    out = tmp_path / "killed"
    kill_after = random.Random(14).randint(10, 40)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "tunesift", *_user_argv(paths, out, seeds)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / "runs").rglob("*.json"))) >= kill_after:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the bench finished before it could be killed"
    done = len(list((out / "runs").rglob("*.json")))
    assert kill_after <= done < 84
    assert main(_user_argv(paths, out, seeds)) == 0
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["executed"] == 84 - done and resumed["reused"] == done
    assert _stable(resumed) == _stable(expected)


def test_causal_rows_pass_per_item_arrays_and_score_the_baseline_once(tmp_path, monkeypatch):
    """bench's causal path, with evaluate_causal faked in causal mode's result shape: the
    untouched model is scored once per target (its perplexity and the deterministic probe do not
    depend on the seed) and its row repeated for every seed."""
    from tunesift.evaluate import causal

    calls = []

    class Fake:
        def __init__(self, texts, task, seed):
            from tunesift.evaluate.encoder import macro_f1

            rng = random.Random(f"{seed}/{len(texts or [])}")
            n = len(task.test_texts)
            self.per_item = _causal_items(rng, n, 0.05 * bool(texts), 0.6)
            gold = [task.labels.index(y) for y in task.test_labels]
            pred = [g if c else 1 - g for g, c in zip(gold, self.per_item["correct"], strict=True)]
            self.per_item["pred"] = pred
            m = _metrics(self.per_item)
            self.perplexity, self.accuracy = m["perplexity"], m["accuracy"]
            self.macro_f1 = macro_f1(gold, pred)
            self.mc_accuracy = self.mc_macro_f1 = self.mc_accuracy_pmi = None

    def fake(texts, task, cfg, seed):
        calls.append((texts is None, seed))
        return Fake(texts, task, seed)

    monkeypatch.setattr(causal, "evaluate_causal", fake)
    paths = _user_files(tmp_path)
    argv = _user_argv(paths, tmp_path / "out", "0,1")
    argv[argv.index("fast")] = "causal"
    assert main(argv) == 0
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sum(b for b, _ in calls) == 1  # the baseline, once for both seeds
    base = [r for r in result["rows"] if r["method"] == BASELINE]
    assert [r["seed"] for r in base] == [0, 1] and base[0]["metrics"] == base[1]["metrics"]
    # a resumed bench with one more seed reads the kept baseline instead of scoring it again
    argv[argv.index("0,1")] = "0,1,2"
    assert main(argv) == 0
    assert sum(b for b, _ in calls) == 1
    assert set(base[0]["metrics"]) == {"perplexity", "accuracy", "macro_f1"}
    assert set(base[0]["per_item"]) == {"test_nll", "test_tokens", "correct", "pred", "gold"}
    kinds = {(c["metric"], c["absolute"]["kind"]) for c in result["comparisons"]}
    assert kinds == {("perplexity", "bootstrap"), ("accuracy", "bootstrap"),
                     ("macro_f1", "bootstrap")}  # fmt: skip
    # the bootstrap's point estimate is the metrics' own paired difference
    f1 = next(c for c in result["comparisons"] if c["metric"] == "macro_f1")
    rows = {(r["method"], r["budget"], r["seed"]): r["metrics"] for r in result["rows"]}
    want = sum(rows[(f1["method"], f1["budget"], s)]["macro_f1"] for s in (0, 1)) / 2
    ref = (BASELINE, None) if f1["reference"] == BASELINE else (f1["reference"], f1["budget"])
    want -= sum(rows[(*ref, s)]["macro_f1"] for s in (0, 1)) / 2
    assert f1["absolute"]["estimate"] == pytest.approx(want, abs=1e-12)


@pytest.mark.slow
def test_causal_bench_on_a_tiny_model_keeps_per_item_scores(tmp_path, tiny_model):
    """The real causal path on a random 2-layer Llama: every run keeps per-item NLL (whose
    ratio is the reported perplexity), and the intervals are bootstraps over them."""
    import dataclasses

    from tunesift.evaluate.bench import UserTask, run_bench

    paths = _user_files(tmp_path)
    spec = dataclasses.replace(
        PRESETS["causal"], methods=("random", "oracle"), budgets=(16,), seeds=(0, 1), n_boot=200,
        causal={"model": tiny_model, "max_length": 16, "batch_size": 8, "epochs": 1},
    )  # fmt: skip
    user = UserTask(str(paths["train"]), str(paths["test"]), (str(paths["pool"]),),
                    (str(paths["unlabeled"]),))  # fmt: skip
    result = run_bench(spec, tmp_path / "out", device="cpu", user_task=user)
    assert result["executed"] == 2 * 3
    for row in result["rows"]:
        items = row["per_item"]
        assert len(items["test_nll"]) == 40
        ppl = math.exp(sum(items["test_nll"]) / sum(items["test_tokens"]))
        assert ppl == pytest.approx(row["metrics"]["perplexity"], rel=1e-6)
    kinds = {(c["metric"], c["absolute"]["kind"]) for c in result["comparisons"]}
    assert ("perplexity", "bootstrap") in kinds
    if "accuracy" in result["rows"][0]["metrics"]:
        assert ("accuracy", "bootstrap") in kinds


# ---- method parameters (--param METHOD.NAME=VALUE) ---------------------------------------------

#: The run key of the spec below on _user_files' task, as the bench wrote it before methods could
#: be given parameters (computed with that code, commit 363627a). If a change moves it, every
#: user's finished runs (runs/bench-causal holds hours of CPU) stop being found and run again.
KEY_BEFORE_PARAMS = "984e3054530b"


def _transcribed_data_key(spec, mode, bt, pool_texts, mode_cfg):
    """The data key's inputs, transcribed here from the bench's protocol (evaluate.bench's
    docstring: the task's splits and reservoir, the pool, the featurizer, the target sample's
    size and the mode's configuration), so the test does not call the code it checks."""
    h = hashlib.sha256()
    for part in ([bt.name], bt.task.train_texts, bt.task.train_labels, bt.task.test_texts,
                 bt.task.test_labels, bt.reservoir, list(pool_texts),
                 [spec.featurizer, str(spec.target_size()), mode,
                  json.dumps(mode_cfg, sort_keys=True)]):  # fmt: skip
        h.update(json.dumps(part, ensure_ascii=False).encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def _run_files(out):
    """Run file name -> path (a name ends with the run key)."""
    return {p.name: p for p in (out / "runs").rglob("*.json")}


def test_method_params_join_only_that_methods_run_key(tmp_path, monkeypatch):
    from tunesift.evaluate import bench

    calls = []
    run_method = bench.run_method

    def spy(prep, method, budget, **kwargs):
        calls.append((method, {k: v for k, v in kwargs.items() if k not in ("seed", "device")}))
        return run_method(prep, method, budget, **kwargs)

    monkeypatch.setattr(bench, "run_method", spy)
    paths = _user_files(tmp_path)
    spec = restrict(PRESETS["causal"], methods=["dsir", "random"], modes=["fast"],
                    budgets=[20], seeds=[0])  # fmt: skip
    user = UserTask(str(paths["train"]), str(paths["test"]), (str(paths["pool"]),),
                    (str(paths["unlabeled"]),))  # fmt: skip
    out = tmp_path / "out"
    first = run_bench(spec, out, user_task=user)
    assert first["executed"] == 3 and first["method_params"] == {}
    bt, pool, _ = build_user_task(user)
    key = _transcribed_data_key(spec, "fast", bt, [r["text"] for r in pool],
                                FastConfig(**spec.fast).to_dict())  # fmt: skip
    assert key == KEY_BEFORE_PARAMS and run_key(key) == run_key(key, {}) == key
    files = _run_files(out)
    assert set(files) == {
        f"{m}-fast-{key}.json" for m in ("no-pre-fine-tuning-knone-s0", "dsir-k20-s0",
                                         "random-k20-s0")}  # fmt: skip
    # a method run with its defaults writes the run file it wrote before (no "params" entry)
    assert all("params" not in json.loads(p.read_text()) for p in files.values())

    # a parameter for dsir: dsir's runs get a key of their own, the others are reused
    given = {"dsir": {"sampling": "top-k"}}
    second = run_bench(spec, out, user_task=user, method_params=given)
    assert second["executed"] == 1 and second["reused"] == 2
    h = hashlib.sha256(f"{key}\0{json.dumps(given['dsir'])}\0".encode()).hexdigest()[:12]
    assert run_key(key, given["dsir"]) == h != key
    files = _run_files(out)
    assert len(files) == 4  # the first dsir run is kept beside the new one
    assert json.loads(files[f"dsir-k20-s0-fast-{h}.json"].read_text())["params"] == given["dsir"]
    rows = {r["method"]: r for r in second["rows"]}
    assert rows["dsir"]["params"] == given["dsir"] and rows["random"]["params"] == {}
    assert second["method_params"] == given
    md = (out / "results.md").read_text()
    assert '- dsir (train): sampling="top-k"' in md
    # the method ran with it (and the first time, with its defaults)
    assert calls == [("dsir", {}), ("random", {}), ("dsir", given["dsir"])]
    # the defaults again, then the parameter again: each finds its run, nothing is computed
    assert run_bench(spec, out, user_task=user)["executed"] == 0
    assert run_bench(spec, out, user_task=user, method_params=given)["executed"] == 0
    assert len(calls) == 3


def test_bench_param_errors_are_one_line_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    for param, message in (
        ("less.nope=1", "bad parameter for method 'less'"),
        ("nope.x=1", "unknown method 'nope' in --param"),
        ("oracle.x=1", "--param names 'oracle', a reference row"),
        ("gotd.n_iter=1", "--param names 'gotd', which this bench does not run"),
        ("less.seed=3", "--param sets less.seed: seed is the bench run's own"),
        ("less.device=cpu", "--param sets less.device"),
        ("less=3", "bench's --param is METHOD.NAME=VALUE"),
    ):
        argv = ["bench", "--preset", "smoke", "--methods", "less,random,oracle", "--param",
                param, "--out", str(out), "-q"]  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
    # the Python API checks the same before it writes anything
    with pytest.raises(TunesiftError, match="LESS.__init__"):
        run_bench(restrict(PRESETS["smoke"], methods=["less"]), out,
                  method_params={"less": {"nope": 1}})  # fmt: skip
    with pytest.raises(TunesiftError, match="must be JSON values"):
        run_bench(restrict(PRESETS["smoke"], methods=["less"]), out,
                  method_params={"less": {"model": object()}})  # fmt: skip
    assert not out.exists()


@corpora
def test_smoke_bench_runs_less_and_color_filter_on_tinylm(tmp_path, monkeypatch, capsys):
    """Issue 17's causal-bench rows, plumbed: ``bench --preset smoke --methods
    color-filter,less,random --param ...`` with TinyLM and a few steps (the preset's pool cut to
    40 records a source so the test takes seconds); LESS gets its target rows' tasks as select
    gives them (the target sample's source, one task)."""
    from tunesift.evaluate import bench
    from tunesift.methods.less import LESS

    monkeypatch.setitem(bench.PRESETS, "smoke",
                        dataclasses.replace(PRESETS["smoke"], pool_per_source=40))  # fmt: skip
    seen = []
    set_tasks = LESS.set_target_tasks

    def spy(self, tasks):
        seen.append(tasks)
        set_tasks(self, tasks)

    monkeypatch.setattr(LESS, "set_target_tasks", spy)
    out = tmp_path / "bench"
    params = ["color-filter.model=tinylm", "color-filter.steps=2", "color-filter.max_length=16",
              "less.model=tinylm", "less.epochs=1", "less.max_length=16",
              "less.projection_dim=64", "less.warmup_fraction=0.05"]  # fmt: skip
    argv = ["bench", "--preset", "smoke", "--methods", "color-filter,less,random", "--seeds",
            "0", "--out", str(out), "-q", *(x for p in params for x in ("--param", p))]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows) == {BASELINE, "color-filter", "less", "random"}
    assert rows["less"]["params"] == {"model": "tinylm", "epochs": 1, "max_length": 16,
                                      "projection_dim": 64, "warmup_fraction": 0.05}  # fmt: skip
    assert rows["color-filter"]["params"]["model"] == "tinylm" and rows["random"]["params"] == {}
    assert all(r["metrics"]["perplexity"] > 1 for r in rows.values())
    assert "- less (fortunes-3): epochs=1" in printed
    assert any(c["method"] == "less" and c["reference"] == "random"
               for c in result["comparisons"])  # fmt: skip
    # LESS got one task code per row of the seed's target sample, as select would give it
    target = (out / "fortunes-3" / "target-s0.jsonl").read_text().splitlines()
    (tasks,) = seen
    assert tasks is not None and len(tasks) == len(target) and len(set(tasks.tolist())) == 1
    # the three methods' runs have three keys; random's is the parameter-free one
    keys = {n.split("-k")[0]: n.rsplit("-", 1)[1] for n in _run_files(out)}
    assert keys["random"] == keys["no-pre-fine-tuning"]
    assert len({keys["random"], keys["less"], keys["color-filter"]}) == 3
