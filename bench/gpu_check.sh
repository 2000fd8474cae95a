#!/usr/bin/env bash
# Train mpnet-base for 300 steps with the torch backend, ZeRO-2 and ZeRO-3 on every visible GPU
# and print throughput and peak memory per configuration. Needs the project's Python environment
# (`make install`, or an environment with its dependencies) on a machine with CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PY" bench/gpu_check.py "$@"
