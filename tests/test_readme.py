"""The README opens with the two commands a new user runs; CI runs the second one verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README must open with a bash block"
    return [
        line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")
    ]


def test_readme_opens_with_two_commands():
    commands = readme_commands()
    assert len(commands) == 2
    main_job, tests = commands
    assert main_job.startswith("bash scripts/setup.sh && ") and "tunesift select" in main_job
    assert "tunesift corpora build" in main_job
    assert main_job.endswith("--report runs/default/report.html"), "the main job writes its report"
    assert tests.startswith("bash scripts/setup.sh --test && ") and "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci


def test_setup_installs_torch_first_from_the_pinned_wheel():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert setup.index("torch==2.13.0") < setup.index('pip install -q -e ".${extras}"')


# --- the README's Python section, run as written ------------------------------------------------
#
# The snippets run in order, in one namespace, in a folder holding tiny files under the names the
# README uses (pool.jsonl, target.jsonl, tasks/, ...). Only sizes are substituted (SIZES): budgets
# fit the 48-text pool, and GradEx trains for a few steps instead of hundreds.

ANIMALS = [
    "The wolf is a wild carnivore of the dog family that hunts in packs.",
    "A tiger is a large striped cat native to the forests of Asia.",
    "The otter is an aquatic mammal with webbed feet and dense fur.",
    "Bats are flying mammals that find their prey by echolocation at night.",
    "The heron wades in shallow water and spears fish with its long bill.",
    "A tortoise is a slow land reptile protected by a heavy domed shell.",
    "The salmon swims upstream to spawn in the river where it hatched.",
    "Bees collect nectar and pollen and live in colonies ruled by a queen.",
]
COMPUTING = [
    "A compiler translates source code into machine instructions before it runs.",
    "The kernel schedules processes and manages memory for every program.",
    "A hash table maps keys to values through a hash function and buckets.",
    "TCP delivers a reliable ordered stream of bytes between two hosts.",
    "A regular expression describes a set of strings with a compact pattern.",
    "The shell reads commands typed by the user and starts programs for them.",
    "A database index speeds up lookups at the cost of slower writes.",
    "Version control records every change to the files of a project.",
]
SIZES = {
    "budget=1000": "budget=12",
    '["gotd", "dsir", "rds"], 1000)': '["gotd", "dsir", "rds"], 12)',
    "budget_tokens=200_000": "budget_tokens=150",
    "max_per_source=500": "max_per_source=8",
    'cache_dir="runs/tasks")': 'cache_dir="runs/tasks", **TINY_GRADEX)',
}
TINY_GRADEX = dict(
    projection_dim=16, max_length=32, meta_steps=4, finetune_steps=2, final_steps=2,
    calibrate=0, subsets=20, subset_size=0.5, threads=1,
)  # fmt: skip


def python_snippets() -> list[str]:
    """The README's Python section, split into snippets at blank lines."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Python") :]
    section = section[: section.index("\n### ", 1)]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block, "the README's Python section must hold a python block"
    return [s.strip() for s in re.split(r"\n\s*\n", block.group(1)) if s.strip()]


def _write_jsonl(path: Path, records: list[dict]) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _readme_files(folder: Path) -> None:
    variants = ["{}", "In short: {}", "{} (from the reference)"]
    pool = [
        {"text": v.format(t), "source": src}
        for src, texts in (("zoology", ANIMALS), ("computing", COMPUTING))
        for t in texts
        for v in variants
    ]
    _write_jsonl(folder / "pool.jsonl", pool)
    _write_jsonl(folder / "target.jsonl", [{"text": f"Zoology: {t}"} for t in ANIMALS])
    for name, texts in (("animals", ANIMALS), ("computing", COMPUTING)):
        for half in (0, 1):
            rows = [{"text": v.format(t)} for t in texts[half::2] for v in variants]
            _write_jsonl(folder / "tasks" / f"{name}{half}.jsonl", rows)
    _write_jsonl(folder / "target_valid.jsonl", [{"text": t} for t in ANIMALS[::2]])
    # the labeled task's texts are not pool texts (evaluate refuses a selection holding them)
    labeled = [{"text": f"Quiz: {t}", "label": "animal"} for t in ANIMALS] + [
        {"text": f"Quiz: {t}", "label": "computing"} for t in COMPUTING
    ]
    _write_jsonl(folder / "target_train.jsonl", labeled[::2])
    _write_jsonl(folder / "target_test.jsonl", labeled[1::2])


def test_readme_python_section_shows_every_api():
    code = "\n".join(python_snippets())
    for call in ("tunesift.select(", "tunesift.compare(", "select_tasks(", "evaluate("):
        assert call in code, f"the README's Python section should show {call}"
    for old in SIZES:
        assert old in code, f"test_readme's SIZES no longer matches the README: {old!r}"


def test_readme_python_snippets_run_as_written(tmp_path, monkeypatch, shared_cache, capsys):
    from tunesift.engine import RayEngine

    _readme_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared_cache))  # the features' default cache
    namespace: dict = {"TINY_GRADEX": TINY_GRADEX}
    ran = []
    for snippet in python_snippets():
        if "RayEngine(" in snippet:
            # needs a running Ray cluster with GPUs (address="auto", gpus_per_task=1):
            # tests/test_engine.py runs the Ray engine on a local cluster instead
            assert RayEngine.__init__  # the class the snippet names exists
            compile(snippet, "README.md", "exec")
            continue
        for old, new in SIZES.items():
            snippet = snippet.replace(old, new)
        exec(compile(snippet, "README.md", "exec"), namespace)
        ran.append(snippet.splitlines()[0])
    sel, cmp, res, report = (namespace[k] for k in ("sel", "cmp", "res", "report"))
    assert sel.method == "dsir" and sel.params["hash"] == "sha256"
    assert (tmp_path / "selected.jsonl").exists() and (tmp_path / "scores.parquet").exists()
    assert [r.method for r in cmp.results] == ["gotd", "dsir", "rds"]
    assert len(res.chosen) == 3 and set(res.chosen) <= set(res.names)
    assert "gotd" in report.table() and "gotd" in capsys.readouterr().out
    assert len(ran) == 5
