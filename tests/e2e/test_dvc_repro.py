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
from w2s.pipeline import dvc_yaml
from w2s.pipeline.sequence import run_steps
from w2s.project import Project

REPO = Path(__file__).resolve().parents[2]


CANDIDATES = (
    "selection.candidates={sharp: {kind: tfidf, tfidf: {C: 10}}, tiny: {kind: tfidf, tfidf: {max_features: 10}}}"
)


def _dvc_project(project: Path, overrides: list[str]) -> dict[str, str]:
    """Make `project` runnable by `dvc repro` as `w2s init` makes a project outside this repository:
    the full config (DVC reads every section its stages name) and the generated dvc.yaml without
    code dependencies; returns the environment to run it in."""
    full = load_config(project / "params.yaml", overrides).model_dump(mode="json")
    (project / "params.yaml").write_text(yaml.safe_dump(full))
    (project / "dvc.yaml").write_text(dvc_yaml.generate(code=False))
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def _repro(project: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "repro"], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _output(project: Path, step: str) -> dict:
    """A stage's saved output as its reference holds it (`{"type": ..., "value": ...}`)."""
    return read_json(project / "outputs" / step / "ref.json")["output"]


def _dvc_keys(project: Path) -> dict[str, str]:
    keys = {name: _output(project, step)["value"]["key"] for name, step in (("weak", "weak"), ("w2s", "student"),
                                                                            ("ceiling", "ceiling"))}  # fmt: skip
    refined = _output(project, "supervise")["value"]["refined"]
    keys["refined"] = refined["value"]["key"] if refined else None
    return keys


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


LIBRARY_RUN = """
import json, sys
from pathlib import Path
from w2s.config import load_config
from w2s.core.cache import ArtifactCache
from w2s.pipeline.sequence import run_steps
from w2s.project import Project

root = Path.cwd()
cfg = load_config(root / "params.yaml")
lib = run_steps(cfg, Project(root), root / "library", ArtifactCache(root / ".w2s" / "cache"))
keys = {"weak": lib.weak.key, "w2s": lib.student.key, "ceiling": lib.ceiling.key}
keys["refined"] = lib.supervision.refined.key if lib.supervision.refined else None
json.dump({"chosen": lib.selection.chosen if lib.selection else None, "keys": keys,
           "student_reused": lib.student.reused, "metrics": lib.metrics,
           "labels_path": str(lib.supervision.labels.path), "labels_md5": lib.supervision.labels.md5}, sys.stdout)
"""


def _library_run(project: Path, env: dict[str, str]) -> dict:
    """The library runner (`run_steps`) on the project's params.yaml, in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", LIBRARY_RUN], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_a_plugin_method_with_weak_selection_agrees_across_the_library_dvc_repro_and_the_flow(
    warm_project: Path, tmp_path: Path
):
    """A refining method that no module of the project knows, installed as a plugin, with weak
    selection among two candidates: the library runner, `dvc repro` and the Prefect flow (through
    the CLI) choose the same weak model and reach the same cache keys, labels and metrics."""
    project = warm_project
    plugin = _plugin(tmp_path / "plugin")
    env = _dvc_project(project, [CANDIDATES, "selection.folds=3"])
    env["PYTHONPATH"] = os.pathsep.join([str(plugin), env.get("PYTHONPATH", "")])
    params = yaml.safe_load((project / "params.yaml").read_text())
    (project / "params.yaml").write_text(yaml.safe_dump({**params, "method": "blurred"}))

    # the library runner, in a process where the plugin is installed (the config's `method`
    # choices are composed from the method registry when w2s.config is imported)
    lib = _library_run(project, env)
    assert lib["chosen"] is not None and lib["keys"]["refined"] is not None
    assert not lib["student_reused"]
    probs = pd.read_parquet(lib["labels_path"])["weak_probs"].map(max)
    assert (probs <= 0.9 + 1e-9).all() and (probs >= 0.5).all(), "the student trained on the blurred labels"

    _repro(project, env)
    assert _output(project, "select")["value"]["chosen"] == lib["chosen"]
    assert _dvc_keys(project) == lib["keys"]
    assert _output(project, "student")["value"]["reused"], "the library's student, same key"
    metrics = json.loads((project / "metrics.json").read_text())
    assert metrics == lib["metrics"] and metrics["changed_frac_transfer"] == 0.0
    labels = pd.read_parquet(lib["labels_path"])
    dvc_labels = _output(project, "supervise")["value"]["labels"]["value"]
    assert dvc_labels["md5"] == lib["labels_md5"] and list(labels.columns)[:4] == [
        "id",
        "text",
        "weak_probs",
        "weak_label",
    ]
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status"], cwd=project, env=env, capture_output=True, text=True
    )
    assert "up to date" in status.stdout, status.stdout

    # the flow, through the CLI, in a process where the plugin is installed: it reuses every
    # model the other two trained, and publishes and versions the labels
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
    assert all(flow["reused"].values()) and set(flow["reused"]) == {"weak", "w2s", "ceiling", "budget"}
    assert flow["metrics"] == metrics and flow["selection"]["chosen"] == lib["chosen"]
    assert flow["student_labels"]["md5"] == lib["labels_md5"]
    assert Path(flow["student_labels"]["path"] + ".dvc").is_file(), "published and DVC-versioned"


def _toy(env, cfg, splits):
    """A step no module of the project knows: counts the split rows, writes them beside its files."""
    (env.out_dir / "toy.json").write_text(json.dumps(splits.counts))
    return {"toy_rows": sum(splits.counts.values())}


def test_a_step_added_to_the_table_runs_in_the_library_the_flow_and_as_a_dvc_stage(warm_project, monkeypatch):
    """Adding a step is one entry in `STEPS`: the library runner, the Prefect flow (a task and a
    nested MLflow run named by its title) and its DVC stage all run it."""
    from mlflow import MlflowClient

    from w2s.flows.pipeline import pipeline
    from w2s.pipeline import dvc_stages, sequence

    project = warm_project
    toy = sequence.Step("toy", _toy, ("split",), ("seed",), (), "toy-step")
    table = (*sequence.STEPS[:3], toy, *sequence.STEPS[3:])
    cfg = load_config(project / "params.yaml", ["registry.enabled=false"])
    lib = run_steps(cfg, Project(project), project / "library", ArtifactCache(project / ".w2s" / "cache"), table)
    total = sum(lib.splits.counts.values())
    assert lib.outputs["toy"] == {"toy_rows": total} and (project / "library" / "toy.json").is_file()

    monkeypatch.setattr(sequence, "STEPS", table)
    result = pipeline(config=cfg.model_dump(mode="json"), project_dir=str(project))
    uri = f"sqlite:///{project / '.w2s' / 'mlflow.db'}"
    c = MlflowClient(uri)
    runs = c.search_runs([c.get_experiment_by_name("w2s").experiment_id], "attributes.run_name = 'toy-step'")
    assert len(runs) == 1 and runs[0].data.tags["mlflow.parentRunId"] == result.mlflow_run_id
    assert json.loads((Path(result.run_dir) / "toy.json").read_text()) == lib.splits.counts

    _dvc_project(project, [])
    for name in ("ingest", "split", "toy"):
        assert dvc_stages.main([name], table) == 0
    assert _output(project, "toy") == {"type": "dict", "value": {"toy_rows": total}}


def _fresh_clone(dest: Path) -> Path:
    """This repository as a fresh clone has it: its tracked (and not ignored) files, committed."""
    from conftest import export_tree

    export_tree(dest)
    for cmd in (["init", "-q"], ["config", "user.email", "t@t"], ["config", "user.name", "t"], ["add", "-A"],
                ["commit", "-q", "-m", "clone"]):  # fmt: skip
        subprocess.run(["git", "-C", str(dest), *cmd], check=True, capture_output=True)
    return dest


def test_the_readme_dvc_commands_run_verbatim_in_a_fresh_clone(tmp_path, bundled_dir, tiny_run):
    """`w2s data fetch && dvc repro` and `dvc exp run -S strong.epochs=1`, as the README gives them,
    in a fresh clone whose params.yaml is the shipped one with the tiny config's values (the
    models come from the session run's cache). Before the step table generated dvc.yaml, the
    shipped params.yaml lacked a section the stages listed and both stopped at the select stage."""
    from conftest import TINY_CONFIG

    clone = _fresh_clone(tmp_path / "clone")
    shipped = yaml.safe_load((clone / "params.yaml").read_text())
    tiny = {**shipped, **{k: v for k, v in TINY_CONFIG.items() if k != "registry"}}
    (clone / "params.yaml").write_text(yaml.safe_dump(tiny, sort_keys=False))
    subprocess.run(["git", "-C", str(clone), "commit", "-qam", "tiny params"], check=True, capture_output=True)
    state = clone / ".w2s"
    shutil.copytree(REPO / ".w2s" / "downloads", state / "downloads", ignore=shutil.ignore_patterns(".lock"))
    shutil.copytree(tiny_run.cache, state / "cache", copy_function=os.link)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "W2S_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for command in ("w2s data fetch && dvc repro", "dvc exp run -S strong.epochs=1"):
        done = subprocess.run(command, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    metrics = json.loads((clone / "metrics.json").read_text())
    assert metrics["w2s_acc"] == tiny_run.result.metrics["w2s_acc"], "the same models, the same numbers"
    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=clone, env=env, capture_output=True, text=True
    )
    experiments = [e for rev in json.loads(shown.stdout) for e in rev.get("experiments") or []]
    assert shown.returncode == 0 and len(experiments) == 1, shown.stdout[-2000:]
