"""One pipeline sequence: `dvc repro` runs the same steps as the library runner and the Prefect
flow, with the same cache keys and metrics, and a method added as a plugin runs through all of
them without any other module knowing it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from w2s.config import load_config
from w2s.core.cache import ArtifactCache
from w2s.io import read_json
from w2s.pipeline.runner import run_config
from w2s.project import Project

REPO = Path(__file__).resolve().parents[2]


CANDIDATES = (
    "selection.candidates={sharp: {kind: tfidf, tfidf: {C: 10}}, tiny: {kind: tfidf, tfidf: {max_features: 10}}}"
)


def _dvc_project(project: Path, overrides: list[str]) -> dict[str, str]:
    """Make `project` runnable by `dvc repro`: the full config (DVC reads every section its
    stages name), dvc.yaml and the library beside it; returns the environment to run it in."""
    full = load_config(project / "params.yaml", overrides).model_dump(mode="json")
    (project / "params.yaml").write_text(yaml.safe_dump(full))
    shutil.copyfile(REPO / "dvc.yaml", project / "dvc.yaml")
    shutil.copytree(REPO / "w2s", project / "w2s", ignore=shutil.ignore_patterns("__pycache__"))
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def _repro(project: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "repro"], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _dvc_keys(project: Path) -> dict[str, str]:
    out = project / "outputs"
    keys = {name: read_json(out / name / "ref.json")["key"] for name in ("weak", "w2s", "ceiling")}
    refined = read_json(out / "supervision" / "supervision.json")["refined"]
    keys["refined"] = refined["key"] if refined else None
    return keys


def test_library_runner_dvc_repro_and_the_flow_agree_on_a_refining_method_with_weak_selection(warm_project: Path):
    project = warm_project
    overrides = ["method=smooth", CANDIDATES, "selection.folds=3"]
    env = _dvc_project(project, overrides)
    cfg = load_config(project / "params.yaml")
    lib = run_config(cfg, Project(project), project / "library", ArtifactCache(project / ".w2s" / "cache"))
    assert lib.selection is not None and lib.supervision.refined is not None
    assert not lib.student.reused

    _repro(project, env)
    chosen = read_json(project / "outputs" / "selection" / "selection.json")["chosen"]
    assert chosen == lib.selection.chosen
    assert _dvc_keys(project) == {
        "weak": lib.weak.key,
        "w2s": lib.student.key,
        "ceiling": lib.ceiling.key,
        "refined": lib.supervision.refined.key,
    }
    metrics = json.loads((project / "metrics.json").read_text())
    assert metrics == lib.metrics
    labels = pd.read_parquet(lib.supervision.labels.path)
    dvc_labels = read_json(project / "outputs" / "supervision" / "supervision.json")["labels"]
    assert dvc_labels["md5"] == lib.supervision.labels.md5 and list(labels.columns)[:4] == [
        "id",
        "text",
        "weak_probs",
        "weak_label",
    ]
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status"], cwd=project, env=env, capture_output=True, text=True
    )
    assert "up to date" in status.stdout, status.stdout

    # the Prefect flow on the same params reuses every model the other two trained
    from flows.pipeline import pipeline

    flow_cfg = load_config(project / "params.yaml", ["registry.enabled=false"])
    result = pipeline(config=flow_cfg.model_dump(mode="json"), project_dir=str(project))
    assert all(result.reused.values()) and set(result.reused) == {"weak", "w2s", "ceiling", "budget"}
    assert result.metrics == metrics and result.selection == lib.selection


# A method that no module of the project knows: naive training on the weak labels mixed with the
# uniform distribution (label smoothing, eps = 0.2), installed as a plugin.
PLUGIN = """
from w2s.methods.base import Refined, RefiningMethod


class Blurred(RefiningMethod):
    name = "blurred"
    summary = "naive training on weak labels mixed 80/20 with the uniform distribution"

    def refine(self, inp):
        return Refined(0.8 * inp.weak_probs + 0.2 / inp.k, {"blurred_rows": len(inp.targets)})
"""


def _plugin(folder: Path) -> Path:
    """A package on its own path, registered under the `w2s.methods` entry-point group."""
    folder.mkdir()
    (folder / "w2s_blurred.py").write_text(PLUGIN)
    info = folder / "w2s_blurred-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: w2s-blurred\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[w2s.methods]\nblurred = w2s_blurred:Blurred\n")
    return folder


def test_a_method_added_as_a_plugin_runs_through_the_flow_and_the_dvc_stages(warm_project: Path, tmp_path: Path):
    project = warm_project
    plugin = _plugin(tmp_path / "plugin")
    env = _dvc_project(project, [])
    env["PYTHONPATH"] = os.pathsep.join([str(plugin), env.get("PYTHONPATH", "")])
    params = yaml.safe_load((project / "params.yaml").read_text())
    (project / "params.yaml").write_text(yaml.safe_dump({**params, "method": "blurred"}))

    # the flow, through the CLI, in a process where the plugin is installed
    run = subprocess.run(
        [str(Path(sys.executable).parent / "w2s"), "run", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    flow = json.loads(run.stdout[run.stdout.index("{") :])
    assert flow["method"] == "blurred" and flow["tags"]["method"] == "blurred/xent"
    labels = pd.read_parquet(flow["student_labels"]["path"])
    probs = labels["weak_probs"].map(max)
    assert (probs <= 0.9 + 1e-9).all() and (probs >= 0.5).all(), "the student trained on the blurred labels"
    assert Path(flow["student_labels"]["path"] + ".dvc").is_file(), "published and DVC-versioned"

    _repro(project, env)
    metrics = json.loads((project / "metrics.json").read_text())
    assert metrics == flow["metrics"] and metrics["changed_frac_transfer"] == 0.0
    sup = read_json(project / "outputs" / "supervision" / "supervision.json")
    assert sup["labels"]["md5"] == flow["student_labels"]["md5"]
    assert read_json(project / "outputs" / "w2s" / "ref.json")["reused"], "the flow's student, same key"
