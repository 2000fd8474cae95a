"""A small causal LM supervises a larger one of the same family through the whole CLI flow, on a
DVC-versioned local copy of sciq in its hub schema: weak LM -> gated, DVC-versioned labels ->
LoRA + bf16 strong LM -> registry -> a pyfunc that predicts raw text in a fresh process. The LMs
are tiny, randomly initialised Qwen2 models with a real tokenizer; a 7B model takes exactly this
code path. (The same run on ZeRO-3 and two ranks: tests/e2e/test_distributed.py; every other task
through the library runner: tests/e2e/test_task_runs.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN, make_project
from suite_schemas import save_task

TINY_LM_RUN = [
    "weak.kind=encoder",
    "weak.encoder.epochs=2",
    "weak.encoder.max_length=32",
    "strong.lora.r=8",
    "strong.precision=bf16",
    "strong.lr=1e-3",
    "strong.max_length=32",
]


def _w2s(project: Path, *args: str) -> subprocess.CompletedProcess:
    # as a user runs it, in this project with its own store: an earlier in-process test of this
    # worker may have left another project's MLFLOW_TRACKING_URI (mlflow.set_tracking_uri exports
    # it) or W2S_PROJECT_DIR in the environment
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "W2S_PROJECT_DIR")}
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["w2s", *args], cwd=project, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def _sets(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


def test_a_weak_lm_supervises_a_lora_bf16_strong_lm_on_sciq_and_the_registered_model_predicts_text(
    tmp_path, bundled_dir, tiny_lms
):
    project = make_project(tmp_path / "proj", bundled_dir)
    hf_name = save_task("sciq", project, "disk", scale=8)  # 336 questions, 672 rows
    # the local copy is versioned as a user versions data: one .dvc file for the folder
    for cmd in ([str(BIN / "dvc"), "add", "-q", hf_name], ["git", "add", "-A"], ["git", "commit", "-qm", "sciq"]):
        subprocess.run(cmd, cwd=project, check=True, capture_output=True)
    overrides = [
        *TINY_LM_RUN,
        "data.name=sciq",
        f"data.hf_name={hf_name}",
        f"weak.encoder.model={tiny_lms['small']}",
        f"strong.model={tiny_lms['big']}",
    ]
    proc = _w2s(project, "run", "--json", *_sets(*overrides))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert Path(result["run_dir"]).is_relative_to(project), "the run happened in this project"
    for key in ("weak_acc", "w2s_acc", "ceiling_acc", "strong_budget_acc"):
        assert 0.0 <= result["metrics"][key] <= 1.0
    # stderr and the data section say where the rows came from, should this ever read another source
    assert result["label_names"] == ["0", "1"], (result.get("data"), proc.stderr[-3000:])
    assert result["counts"]["test"] == 120

    # the weak LM's labels passed the gate and are a DVC-tracked file
    labels = project / result["weak_labels"]["path"]
    assert Path(f"{labels}.dvc").is_file() and result["weak_labels"]["dvc"]

    # the student trained LoRA adapters and its head on a bf16 base, pooled at the last token
    run_dir = Path(result["run_dir"])
    assert run_dir.is_dir()
    lineage = _w2s(project, "lineage", "w2s-test@challenger", "--json")
    assert lineage.returncode == 0, lineage.stderr[-2000:]
    record = json.loads(lineage.stdout)
    assert record["strong_model"]["base"] == overrides[-1].split("=", 1)[1]
    assert record["data"]["table_md5"] and record["params"]["data"]["name"] == "sciq"
    assert record["data"]["dvc_file"] == f"{hf_name}.dvc" and record["data"]["in_dvc"] == "yes", record["data"]
    assert record["strong_model"]["adapter"] == "lora r=8 alpha=16"
    trainable = int(record["strong_model"]["trainable_params"])
    cache = project / ".w2s" / "cache" / "strong"
    (info,) = [
        json.loads(p.read_text()) for p in cache.glob("*/info.json") if json.loads(p.read_text())["role"] == "w2s"
    ]
    assert info["pooling"] == "last" and info["precision"] == "bf16" and info["lora_r"] == 8
    assert trainable == info["trainable_params"] < 0.2 * info["total_params"]

    # the registered version is a pyfunc that answers raw text in a fresh Python process
    code = (
        "import json, mlflow; m = mlflow.pyfunc.load_model('models:/w2s-test@challenger'); "
        "out = m.predict(['Q: What carries charge? A: electron', 'Q: What carries charge? A: photon']); "
        "print(json.dumps({'cols': list(out.columns), 'sums': out.sum(axis=1).tolist()}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}  # a user's fresh shell
    env.update(MLFLOW_TRACKING_URI=f"sqlite:///{project / '.w2s' / 'mlflow.db'}", HF_HUB_OFFLINE="1")
    served = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=project.parent, timeout=300
    )
    assert served.returncode == 0, served.stderr[-2000:]
    out = json.loads(served.stdout.strip().splitlines()[-1])
    assert out["cols"] == result["label_names"] and out["sums"] == pytest.approx([1.0, 1.0])
