"""The whole flow on this machine's device: `w2s run` trains a tiny LM student (LoRA r=8, bf16) with
the torch backend and then with DeepSpeed, registers each, and a fresh process with no GPU visible
predicts the test split with the registered versions (the `flow` section of bench/gpu_check.py).

Each step is the `w2s` command in its own process, in a fresh project (git + DVC repository, the
demo's params.yaml, the bundled election tweets in data/, its own MLflow store and Prefect home):

    python -m w2s.cli.main tiny-lms models/lm --sizes 64x2      # the strong LM, pretrained on the tweets
    python -m w2s.cli.main run --set strong.model=... --set strong.lora.r=8 --set strong.precision=bf16 \\
        --set strong.backend=torch                           # then the same with backend=deepspeed
    CUDA_VISIBLE_DEVICES= python -m w2s.cli.main predict w2s-strong/N --input test.csv --output preds.csv

The weak supervisor is the demo's (TF-IDF). `backend=auto` would pick DeepSpeed on a GPU for both
runs, so the first names torch: both trainers run on the device. The CPU predictions must agree
with the accuracy the run reported on the same rows (within `AGREEMENT`: bf16 autocast on a CPU
and a GPU round differently). Only the tweets file is read from outside the project (no network).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO

DATA_FILE = "election-tweets-2016.tab"
AGREEMENT = 0.02  # |accuracy of the CPU predictions - the run's own test accuracy|
STUDENT = ["strong.lora.r=8", "strong.precision=bf16"]
BACKENDS = ("torch", "deepspeed")
# The demo's sizes on a GPU; `tiny`: a CPU smoke run of the same steps in minutes.
SIZES = {
    "gpu": {"lm": "64x2", "pretrain_steps": 100, "sets": []},
    "tiny": {
        "lm": "32x1",
        "pretrain_steps": 0,
        "sets": [
            "data.max_rows=900",
            "split.weak_train=100",
            "split.transfer=240",
            "split.val=80",
            "split.test=120",
            "strong.max_length=32",
            "strong.epochs=1",
            "strong.batch_size=16",
            "strong.evals_per_epoch=2",
            "eval.min_gap=0.0",
        ],
    },
}


def environment(home: Path, project: Path, hide_gpu: bool = False) -> dict[str, str]:
    """A `w2s` process's environment: this checkout importable, services local and quiet."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
            "W2S_PROJECT_DIR": str(project),
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "GX_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
            "TQDM_DISABLE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    if hide_gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def w2s(args: list[str], project: Path, env: dict[str, str], timeout_s: float = 1800) -> subprocess.CompletedProcess:
    """`w2s ARGS` in `project` as a fresh process (the checkout's CLI module: nothing to install)."""
    cmd = [sys.executable, "-m", "w2s.cli.main", *args]
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
        raise RuntimeError(f"w2s {' '.join(args[:2])} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    return proc


def json_output(text: str) -> Any:
    """The JSON document a `w2s ... --json` printed last (libraries may print lines before it)."""
    lines = text.splitlines()
    start = max(i for i, line in enumerate(lines) if line in ("{", "["))
    return json.loads("\n".join(lines[start:]))


def make_project(root: Path, data_file: Path) -> Path:
    """A fresh git + DVC project with the demo's params.yaml and the tweets in data/."""
    import yaml

    from w2s.ops.scaffold import init_project

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    return init_project(root / "proj", [data_file], params, root / "remote")


def _student_tags(project: Path, run_id: str) -> dict[str, str]:
    """The student stage's backend and ranks, and the device the run saw (its parent's tag)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / '.w2s' / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    parent = client.get_run(run_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    stage = next(r for r in children if r.info.run_name == "strong-w2s")
    tags = {k: v for k, v in stage.data.tags.items() if k in ("backend", "world_size")}
    return {**tags, "device": parent.data.tags.get("determinism.device", "?")}


def _predict_on_cpu(project: Path, env: dict[str, str], version: str, test: Any) -> dict[str, Any]:
    """The registered `version` predicts the test rows in a fresh process that sees no GPU."""
    out = project / f"preds-v{version}.csv"
    start = time.perf_counter()
    args = ["predict", f"w2s-strong/{version}", "--input", str(project / "test.csv"), "--output", str(out)]
    record = json_output(w2s([*args, "--json"], project, env).stdout)
    import pandas as pd

    preds = pd.read_csv(out, dtype={"id": str}).set_index("id").loc[test["id"].astype(str)]
    return {
        "version": version,
        "rows": record["rows"],
        "accuracy": float((preds["label"].astype(str).to_numpy() == test["label"].astype(str).to_numpy()).mean()),
        "seconds": round(time.perf_counter() - start, 1),
    }


def run_flow(data_file: Path, tiny: bool) -> dict[str, Any]:
    """Both `w2s run`s and the CPU predictions; raises with the failing step's output."""
    import pandas as pd

    size = SIZES["tiny" if tiny else "gpu"]
    if not data_file.is_file():
        raise RuntimeError(f"{data_file} not found: run `w2s data fetch` here, or carry that one file to this machine")
    out: dict[str, Any] = {"lm_size": size["lm"], "runs": [], "predictions": []}
    with tempfile.TemporaryDirectory(prefix="w2s-gpu-flow-") as tmp:
        root = Path(tmp)
        project = make_project(root, data_file)
        env = environment(root, project)
        start = time.perf_counter()
        lms = w2s(
            ["tiny-lms", "models/lm", "--sizes", size["lm"], "--pretrain-steps", str(size["pretrain_steps"]), "--json"],
            project,
            env,
        )
        lm = json_output(lms.stdout)[0]
        out["lm"] = {k: lm[k] for k in ("hidden", "layers", "heads", "params")}
        out["lm"]["seconds"] = round(time.perf_counter() - start, 1)
        sets = [f"strong.model={lm['folder']}", *STUDENT, *size["sets"]]
        test = None
        for backend in BACKENDS:
            start = time.perf_counter()
            args = ["run", "--json"] + [a for s in [*sets, f"strong.backend={backend}"] for a in ("--set", s)]
            result = json_output(w2s(args, project, env).stdout)
            tags = _student_tags(project, result["mlflow_run_id"])
            out["runs"].append(
                {
                    "backend": backend,
                    "seconds": round(time.perf_counter() - start, 1),
                    "w2s_acc": result["metrics"].get("w2s_acc"),
                    "model": result["model"],
                    "student": tags,
                }
            )
            if test is None:
                splits = pd.read_parquet(Path(result["run_dir"]) / "splits.parquet")
                test = splits[splits["split"] == "test"][["id", "text", "label"]]
                test[["id", "text"]].to_csv(project / "test.csv", index=False)
        cpu_env = environment(root, project, hide_gpu=True)
        for run in out["runs"]:
            pred = _predict_on_cpu(project, cpu_env, str(run["model"]["version"]), test)
            pred["agrees"] = abs(pred["accuracy"] - run["w2s_acc"]) <= AGREEMENT
            out["predictions"].append(pred)
    out["ok"] = all(p["agrees"] for p in out["predictions"]) and all(r["model"] for r in out["runs"])
    return out
