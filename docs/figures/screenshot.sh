#!/usr/bin/env bash
# The MLflow page of a registered version (default: the one @challenger points at), as
# docs/figures/mlflow-model-version.png: a real `w2s ui` over the project's store, photographed
# by headless Chromium (Debian: `apt-get install chromium`). From the project folder, after
# `make demo`:
#   bash docs/figures/screenshot.sh [VERSION]
set -euo pipefail
PATH="$PWD/.venv/bin:$PATH"
port=${W2S_SCREENSHOT_PORT:-5057}
out=docs/figures/mlflow-model-version.png
version=${1:-$(python -c '
import mlflow
mlflow.set_tracking_uri("sqlite:///.w2s/mlflow.db")
print(mlflow.MlflowClient().get_model_version_by_alias("w2s-strong", "challenger").version)')}
log=$(mktemp)
w2s ui --port "$port" >"$log" 2>&1 &
ui=$!
trap 'kill $ui 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 "$ui" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.5
done
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,1250 \
  --virtual-time-budget=20000 --screenshot="$out" \
  "http://127.0.0.1:$port/#/models/w2s-strong/versions/$version"
echo "$out: w2s-strong version $version"
