#!/usr/bin/env bash
# The wheel kit for a bare CUDA box: everything bench/gpu_check.sh (every section, the flow included)
# needs that such a box lacks, downloaded here at the versions of requirements.lock, so that a GPU
# machine with no package registry can run the check.
#
#   bash bench/gpu_wheels.sh [--out DIR] [--python-version 3.12] [--part-mib 56]   # DIR: .w2s/gpu-kit
#
# Assumed present on the box (not in the kit): CPython 3.12 on x86-64 Linux with pip, git (the flow's
# project is a git + DVC repository), torch, transformers, peft, accelerate, pandas, pyarrow,
# scikit-learn, numpy, their own dependencies, and the rest of the image's packages that
# bench/gpu_kit.py lists. The kit: mlflow (as mlflow-skinny, its code without the server's web UI),
# prefect, dvc, great-expectations, pydantic, hjson, deepspeed and the dependencies of theirs that
# the box lacks and the check imports (bench/gpu_kit.py decides which), as cp312 manylinux x86-64
# or pure-Python wheels; deepspeed is an sdist, so a py3-none-any wheel of it is built here (no ops
# compiled: the check uses none).
#
# One transfer to a lent machine carries at most 64 MiB with the tree, so the wheels go into parts
# of at most --part-mib (one part, DIR/part1, at the lock's versions). The last part also holds
# data/election-tweets-2016.tab (the hf and flow sections' tweets). DIR/install.txt has the line to
# run on the box for each part:
#
#   python3 -m pip install --no-index --no-deps --upgrade --target .w2s/gpu-site .w2s/gpu-kit/part1/*.whl
#   PYTHONPATH=$PWD/.w2s/gpu-site bash bench/gpu_check.sh --data-dir .w2s/gpu-kit/part1/data ...
#
# --no-deps: the box's own torch and transformers stay as they are. Needs this checkout's .venv
# (`make install`) and access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT=.w2s/gpu-kit
PYVER=3.12
PART_MIB=56
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --python-version) PYVER="$2"; shift 2 ;;
    --part-mib) PART_MIB="$2"; shift 2 ;;
    *) echo "usage: bash bench/gpu_wheels.sh [--out DIR] [--python-version X.Y] [--part-mib N]" >&2; exit 2 ;;
  esac
done
rm -rf "$OUT"
mkdir -p "$OUT/all"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PY" -m bench.gpu_kit --python-version "$PYVER" > "$OUT/packages.txt"
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
while read -r spec; do
  if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
      "${PLATFORMS[@]}" -d "$OUT/all" "$spec" 2> "$TMP/err"; then
    # no wheel for the box on the index (deepspeed ships an sdist): build a pure-Python one here
    "$PY" -m pip download -q --no-deps --no-binary=:all: -d "$TMP/sdist" "$spec"
    "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT/all" "$TMP"/sdist/*
    rm -rf "$TMP/sdist"
  fi
done < "$OUT/packages.txt"
# every listed package has its wheel; parts, the tweets and install.txt (bench/gpu_kit.py split)
"$PY" -m bench.gpu_kit split "$OUT" --part-mib "$PART_MIB"
echo "$OUT: $(cat "$OUT"/part*/*.whl | wc -c | awk '{printf "%.1f MiB", $1 / 1048576}') of wheels" \
  "for a Python $PYVER box, in $(ls -d "$OUT"/part* | wc -l) parts:"
du -sh "$OUT"/part*
echo "on the box, one line per part (also in $OUT/install.txt):"
cat "$OUT/install.txt"
