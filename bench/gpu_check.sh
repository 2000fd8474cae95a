#!/usr/bin/env bash
# GPU check, two sections on every visible GPU (see bench/gpu_check.py for every flag):
#   encoder: mpnet-base for 300 steps with the torch backend, ZeRO-2 and ZeRO-3: examples/s, peak memory;
#   lm:      a ~310M-weight Qwen2-style decoder built here from a config with random weights (no hub,
#            nothing carried over), LoRA r=16, bf16, ZeRO-2 and ZeRO-3: tokens/s and MFU.
# `--sections lm` runs one section; `--device cpu --tiny` smoke-tests the code path without a GPU.
# Without a CUDA device (and without --device cpu) it exits 2 with an error; a failed configuration
# makes it exit 1. Needs the project's Python environment (`make install`, or an environment with
# its dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PY" bench/gpu_check.py "$@"
