"""Prepare the ``causal-gpu`` preset for a GPU machine that has no network, no corpora and no
SmolLM2 (issue 14 item 6); run here, where they are installed. ``benchmarks/causal_gpu.sh``
says how the device calls use what this writes.

    PYTHONPATH=src .venv/bin/python benchmarks/causal_gpu_prepare.py

Writes (all git-ignored):

- ``.cgpu/data/``: the preset's pool (``pool.jsonl.gz``) and, per target, ``train.jsonl.gz``,
  ``test.jsonl.gz`` and the oracle's in-domain ``reservoir.jsonl.gz``, exactly what ``bench``
  builds from the corpora here (``build_task``/``build_pool``), so the device runs the preset's
  data as a user task (``--task-train/--task-test/--pool/--task-unlabeled``);
- ``.cgpu/tokenizer/``: SmolLM2's tokenizer as transformers >= 5.23 builds it (the device's
  older transformers builds it wrong from the GGUF);
- ``.cgpu/whl/``: the wheels the device lacks (POT, gguf), for its Python;
- ``.cgpu-a/``, ``.cgpu-b/``: the two halves of SmolLM2's 98 MB GGUF (one call carries at most
  64 MiB), and ``.cgpu/smollm2.gguf.sha256`` to check them once joined;
- ``.mini/minilm``: MiniLM with its weights in float16 (45 MB), if not there yet.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

GGUF_HALVES = (".cgpu-a", ".cgpu-b")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                   "special_tokens_map.json")  # fmt: skip


def write_gz(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    tmp.replace(path)


def data(root: Path, preset: str) -> dict:
    from tunesift.evaluate.presets import PRESETS
    from tunesift.evaluate.targets import build_pool, build_task

    spec = PRESETS[preset]
    tasks = [build_task(spec, t) for t in spec.tasks]
    pool = build_pool(spec, tasks)
    out = root / "data"
    shutil.rmtree(out, ignore_errors=True)  # no stale target of an earlier preset is carried
    out.mkdir(parents=True)
    write_gz(out / "pool.jsonl.gz", [{"text": r["text"], "source": r["source"]} for r in pool])
    names = []
    for bt in tasks:
        t = bt.task
        d = out / t.name
        d.mkdir(exist_ok=True)
        write_gz(d / "train.jsonl.gz", [{"text": x, "label": y}
                                        for x, y in zip(t.train_texts, t.train_labels, strict=True)])  # fmt: skip
        write_gz(d / "test.jsonl.gz", [{"text": x, "label": y}
                                       for x, y in zip(t.test_texts, t.test_labels, strict=True)])  # fmt: skip
        write_gz(d / "reservoir.jsonl.gz", [{"text": x} for x in bt.reservoir])
        names.append(t.name)
    return {"preset": preset, "pool": len(pool), "tasks": names}


def gguf_halves(root: Path) -> str:
    from tunesift.models.loaders import SMOLLM2_GGUF, _smollm2_package_dir

    blob = (_smollm2_package_dir() / SMOLLM2_GGUF).read_bytes()
    half = (len(blob) + 1) // 2
    for k, folder in enumerate(GGUF_HALVES):
        Path(folder).mkdir(exist_ok=True)
        (Path(folder) / f"smollm2.gguf.{k}").write_bytes(blob[k * half : (k + 1) * half])
    digest = hashlib.sha256(blob).hexdigest()
    (root / "smollm2.gguf.sha256").write_text(digest + "\n")
    return digest


def tokenizer(root: Path) -> None:
    from tunesift.models.loaders import smollm2_path

    src, dst = smollm2_path(), root / "tokenizer"
    dst.mkdir(exist_ok=True)
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def wheels(root: Path, python: str) -> None:
    from importlib.metadata import version

    dst = root / "whl"
    dst.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", python, "--implementation", "cp",
         "--platform", "manylinux2014_x86_64", "-d", str(dst),
         "POT==0.9.5", f"gguf=={version('gguf')}"],
        check=True,
    )  # fmt: skip


def minilm_half(dst: Path) -> None:
    """MiniLM's folder with its floating-point weights stored in float16 (loaded as float32)."""
    from safetensors.torch import load_file, save_file

    from tunesift.models.loaders import minilm_path

    if (dst / "model.safetensors").is_file():
        return
    shutil.copytree(minilm_path(), dst, dirs_exist_ok=True)
    weights = load_file(dst / "model.safetensors")
    save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()},
              dst / "model.safetensors", metadata={"format": "pt"})  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="causal-gpu")
    ap.add_argument("--python", default="3.12", help="the device's Python (for the wheels)")
    args = ap.parse_args()
    root = Path(".cgpu")
    root.mkdir(exist_ok=True)
    summary = data(root, args.preset)
    summary["gguf_sha256"] = gguf_halves(root)
    tokenizer(root)
    wheels(root, args.python)
    minilm_half(Path(".mini/minilm"))
    (root / "prepared.json").write_text(json.dumps(summary, indent=1) + "\n")
    for folder in (root, *map(Path, GGUF_HALVES), Path(".mini/minilm")):
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"{folder}: {size / 2**20:.1f} MiB")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
