#!/usr/bin/env bash
# GPU check on every visible GPU, one JSON report (see bench/gpu_check.py for every flag):
#   encoder: mpnet-base with the torch backend, ZeRO-2 and ZeRO-3: examples/s, peak memory;
#   lm:      a ~310M-weight Qwen2-style decoder built here from a config with random weights (no hub,
#            nothing carried over), bf16, LoRA r=16 and full fine-tune, each on the torch backend,
#            ZeRO-2 and ZeRO-3: tokens/s, MFU, peak memory against `w2s plan`;
#   hf:      the w2s trainer against the HF Trainer + peft on the same decoder, LoRA and batch;
#   flow:    `w2s run` with a tiny LM student on the torch backend and on DeepSpeed, then the
#            registered versions predict on a CPU in a fresh process.
# `--sections lm,hf` runs some; `--device cpu --tiny` runs every mode and section on a CPU in
# minutes. Without a CUDA device (and without --device cpu) it exits 2 with an error; a failed
# configuration or section makes it exit 1. Needs the project's Python environment (`make install`),
# or on a bare GPU box the kit of bench/gpu_wheels.sh on PYTHONPATH.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PY" bench/gpu_check.py "$@"
