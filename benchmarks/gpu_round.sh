#!/bin/bash
# Issue 15's GPU checks in one short window on one H100/H200 (docs/benchmarks.md, "GPU").
#
# Prepare here (no GPU needed), in the repository root:
#   echo /.whl/ >> .git/info/exclude; echo /.mini/ >> .git/info/exclude
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl POT==0.9.5 ott-jax==0.6.0 jaxopt==0.8.5
#   .mini/minilm: the bundled MiniLM folder with its weights saved in float16 (45 MB);
#   .mini/pool.jsonl, .mini/target.jsonl: data/default's; .mini/cpu_picks.json: the pool rows of
#   `tunesift select --pool data/default/pool.jsonl --target data/default/target.jsonl
#    --budget 500` on a CPU (its "index" fields).
# Then on the GPU machine (device tool: run with carry [".whl", ".mini"]):
#   bash benchmarks/gpu_round.sh
# Results land in $OUT (default /tmp/gpu-round): scale.json, ot.json, embed.json, profile.txt,
# all.log. PARTS (default "tests scale ot embed") runs only some of them.
set -u
OUT=${OUT:-/tmp/gpu-round}
PARTS=${PARTS:-tests scale ot embed}
has() { [[ " $PARTS " == *" $1 "* ]]; }
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site
work=/dev/shm
[ "$(df --output=avail -B1G /dev/shm | tail -1)" -ge 24 ] || work=/tmp
{
    date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch, numpy, sentence_transformers, transformers; print('torch', torch.__version__, 'numpy', numpy.__version__, 'st', sentence_transformers.__version__, 'transformers', transformers.__version__)"
    has tests && echo "== tests/test_gpu_paths.py" && timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_gpu_paths.py \
        -k "streamed or free_device or cpu_keeps or feature_check or fused or argsort" 2>&1 | tail -8
    has scale && echo "== score_at_scale 10M x 5k x 384 (CLI, auto mode) [$(date -u +%T)]" &&
    timeout 150 python3 benchmarks/score_at_scale.py --pool 10000000 --target 5000 --dim 384 \
        --device cuda --work "$work/scale" --runs 3 --pycache /tmp/pyc \
        --profile "$OUT/profile.txt" --out "$OUT/scale.json" 2>&1 | tail -40
    rm -rf "$work/scale"
    has ot && echo "== gpu_ot exact 1M x 5k x 384 [$(date -u +%T)]" &&
    timeout 150 python3 benchmarks/gpu_ot.py --pool 1000000 --target 5000 --dim 384 \
        --work "$work/gpu-ot" --out "$OUT/ot.json" 2>&1 | tail -60
    rm -rf "$work/gpu-ot"
    has embed && echo "== gpu_embed MiniLM [$(date -u +%T)]" &&
    timeout 120 python3 benchmarks/gpu_embed.py --model .mini/minilm --pool .mini/pool.jsonl \
        --target .mini/target.jsonl --cpu-picks .mini/cpu_picks.json --out "$OUT/embed.json" \
        2>&1 | grep -v -i warn | tail -40
    date -u
} > "$OUT/all.log" 2>&1
cat "$OUT/all.log"
