#!/bin/bash
# Issue 14 item 6: the causal-gpu preset in one short window on one H100/H200 that has no
# network, no corpora and no SmolLM2 (docs/benchmarks.md, "causal-gpu: how to run it").
#
# Here, where the corpora and models are installed (writes .cgpu/, .cgpu-a/, .cgpu-b/, .mini/):
#   PYTHONPATH=src .venv/bin/python benchmarks/causal_gpu_prepare.py
# Then three device calls in a row, each within the machine's warm window (device tool `run`):
#   1. bash benchmarks/causal_gpu.sh stash     carry [".cgpu-a"]           (GGUF half 1, 49 MB)
#   2. bash benchmarks/causal_gpu.sh stash     carry [".cgpu-b"]           (GGUF half 2, 49 MB)
#   3. bash benchmarks/causal_gpu.sh run       carry [".cgpu", ".mini/minilm"]  timeout_s 540
# `stash` keeps the carried half in .cgpu-keep/ (ignored, so kept between calls while the machine
# stays warm). `run` joins and checks the GGUF, converts SmolLM2 with the tokenizer saved here
# (the device's transformers is older than the 5.23 that builds it right), then runs
# `tunesift bench --preset causal-gpu` on each target as a user task into $OUT/bench/<task>,
# starting no task after DEADLINE seconds (default 470) and stopping the running one there:
# finished runs are kept. To continue in a later window, copy the returned bench/ folder to
# .cgpu/out first: `run` starts from it and computes only the missing runs.
# TASKS, METHODS, BUDGETS, SEEDS narrow the grid; PRESET, DEVICE, PYTHON and SKIP_WHEELS=1 are for a
# dry run on a CPU (e.g. PRESET=causal DEVICE=cpu METHODS=random BUDGETS=8 SEEDS=0).
set -u
OUT=${OUT:-/tmp/causal-gpu}
DEADLINE=${DEADLINE:-470}
PRESET=${PRESET:-causal-gpu}
DEVICE=${DEVICE:-cuda}
work=${WORK:-/tmp/cgpu}
PY=${PYTHON:-python3}

case "${1:-}" in
stash)
    mkdir -p .cgpu-keep
    for d in .cgpu-a .cgpu-b; do [ -d "$d" ] && cp "$d"/smollm2.gguf.* .cgpu-keep/; done
    ls -l .cgpu-keep
    exit 0 ;;
run) ;;
*) echo "usage: $0 stash|run" >&2; exit 2 ;;
esac

half() {  # the GGUF's half $1, from an earlier stash or carried now
    for d in .cgpu-keep .cgpu-a .cgpu-b; do
        [ -f "$d/smollm2.gguf.$1" ] && { echo "$d/smollm2.gguf.$1"; return 0; }
    done
    echo "GGUF half $1 is missing: run the two stash calls first (or the machine went cold)" >&2
    return 1
}
mkdir -p "$OUT/bench" "$work/data"
exec > >(tee "$OUT/all.log") 2>&1
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
a=$(half 0) && b=$(half 1) || exit 1
cat "$a" "$b" > "$work/smollm2.gguf"
echo "$(cat .cgpu/smollm2.gguf.sha256)  $work/smollm2.gguf" | sha256sum -c - || exit 1
if [ "${SKIP_WHEELS:-0}" != 1 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target "$work/site" .cgpu/whl/*.whl || exit 1
fi
export PYTHONPATH=$PWD/src:$work/site XDG_CACHE_HOME=$work/xdg PYTHONUNBUFFERED=1
export TQDM_DISABLE=1  # progress bars would fill the few kB of output the device tool returns
export TUNESIFT_MINILM=$PWD/.mini/minilm
"$PY" -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
"$PY" - "$work/smollm2.gguf" <<'EOF' || exit 1
import sys, time
from pathlib import Path
from tunesift.models.loaders import SMOLLM2_CACHE_NAME, convert_gguf_causal_lm, models_dir
target = models_dir(None) / SMOLLM2_CACHE_NAME
t0 = time.perf_counter()
if not (target / "model.safetensors").is_file():
    convert_gguf_causal_lm(Path(sys.argv[1]), target, tokenizer=Path(".cgpu/tokenizer"))
print(f"SmolLM2 at {target} ({time.perf_counter() - t0:.1f}s)")
EOF
for f in $(cd .cgpu/data && find . -name '*.jsonl.gz'); do
    mkdir -p "$work/data/$(dirname "$f")"
    gunzip -c ".cgpu/data/$f" > "$work/data/${f%.gz}"
done
[ -d .cgpu/out ] && cp -rn .cgpu/out/. "$OUT/bench/"
# the prepared tasks by default (causal-gpu: fortunes-4 gcide-4 debian-4 foldoc-3)
TASKS=${TASKS:-$("$PY" -c 'import json; print(*json.load(open(".cgpu/prepared.json"))["tasks"])')}
for t in $TASKS; do
    left=$((DEADLINE - SECONDS))
    if [ "$left" -lt 30 ]; then echo "== $t: not started ($left s left)"; continue; fi
    d=$work/data/$t
    echo "== $t [$(date -u +%T), $left s left]"
    timeout "$left" "$PY" -m tunesift bench --preset "$PRESET" --device "$DEVICE" \
        --task-train "$d/train.jsonl" --task-test "$d/test.jsonl" \
        --task-unlabeled "$d/reservoir.jsonl" --pool "$work/data/pool.jsonl" \
        --task-name "$t" --out "$OUT/bench/$t" ${METHODS:+--methods "$METHODS"} \
        ${BUDGETS:+--budgets "$BUDGETS"} ${SEEDS:+--seeds "$SEEDS"} 2>&1 |
        grep --line-buffered -v -i "warn"
    echo "== $t: exit ${PIPESTATUS[0]}, $(find "$OUT/bench/$t/runs" -name '*.json' 2>/dev/null | wc -l) runs kept"
    rm -f "$OUT/bench/$t/pool.jsonl"  # 15 MB each; rebuilt from .cgpu/data on a rerun
done
date -u
