"""Safety of loading and logging: no code path unpickles or evaluates user-reachable input, the
registered model is safetensors weights loaded from code, and a secret in the environment never
lands in MLflow, the weak labels, the metrics or any other file a run writes."""

from __future__ import annotations

import ast
import secrets
from pathlib import Path

import pytest

from tests.conftest import REPO

SCANNED = ("w2s", "tasks", "flows", "cli")
# Calls that execute code or deserialise arbitrary objects.
BANNED_NAMES = {"eval", "exec"}
BANNED_ATTRS = {
    ("os", "system"), ("os", "popen"), ("pickle", "load"), ("pickle", "loads"), ("cloudpickle", "load"),
    ("cloudpickle", "loads"), ("dill", "load"), ("dill", "loads"), ("joblib", "load"), ("marshal", "loads"),
    ("shelve", "open"), ("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"),
}


def _violations(source: str, where: str = "<snippet>") -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (node.module.split(".")[0], alias.name) in BANNED_ATTRS:
                    found.append(f"{where}:{node.lineno} imports {node.module}.{alias.name}")
        if not isinstance(node, ast.Call):
            continue
        func, line = node.func, f"{where}:{node.lineno}"
        if isinstance(func, ast.Name) and func.id in BANNED_NAMES:
            found.append(f"{line} calls {func.id}()")
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            pair = (func.value.id, func.attr)
            if pair in BANNED_ATTRS:
                found.append(f"{line} calls {'.'.join(pair)}()")
            weights_only = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                               for k in node.keywords)
            if pair == ("torch", "load") and not weights_only:
                found.append(f"{line} calls torch.load() without weights_only=True")
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                found.append(f"{line} passes shell={ast.unparse(kw.value)}")
    return found


@pytest.mark.parametrize("snippet", [
    "eval(cfg.expr)", "exec(code)", "os.system(f'dvc push {remote}')", "subprocess.run(cmd, shell=True)",
    "pickle.load(f)", "from pickle import loads", "joblib.load(path)", "yaml.load(text, Loader=yaml.Loader)",
    "torch.load(path)",
])
def test_the_scan_catches_each_unsafe_pattern(snippet):
    assert _violations(snippet), snippet


def test_safe_forms_pass_the_scan():
    assert _violations("yaml.safe_load(t); torch.load(p, weights_only=True); subprocess.run(['git', 'add', p])\n"
                       "model.eval(); safetensors.torch.load_file(p)") == []


def test_no_code_path_evaluates_shells_out_or_unpickles():
    """Config values reach subprocesses only as list arguments and files are never unpickled."""
    found = []
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            found += _violations(path.read_text(), str(path.relative_to(REPO)))
    assert found == []


PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".ckpt", ".npy"}


def _files(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_planted_secrets_reach_no_param_tag_artifact_label_or_metric_and_the_model_loads_without_pickle(
        project: Path, monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path):
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    from cli.main import main

    token = secrets.token_hex(16)
    for var in ("AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "W2S_TEST_API_KEY"):
        monkeypatch.setenv(var, f"fake-{token}")
    code = main(["run"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    assert token not in captured.out + captured.err

    uri = f"sqlite:///{project / '.w2s' / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    runs = [r for exp in client.search_experiments() for r in client.search_runs([exp.experiment_id])]
    assert len(runs) >= 6  # the parent and its stage runs
    logged = []
    for r in runs:
        logged += [*r.data.params.items(), *r.data.tags.items(), *r.data.metrics]
    model = client.get_registered_model("w2s-test")
    versions = client.search_model_versions("name='w2s-test'")
    logged += [(model.description or "", "")] + [kv for v in versions for kv in v.tags.items()]
    assert not [kv for kv in logged if token in str(kv)]

    # Every file the run left: the MLflow store and its artifacts, weak labels, metrics, caches,
    # run folders, git and DVC (and the DVC remote beside the project).
    files = _files(project, project.parent / f"{project.name}-remote")
    assert list((project / "weak_labels").glob("*.parquet")) and (project / "metrics.json").is_file()
    assert any("mlartifacts" in p.parts for p in files)
    commit = runs[0].data.tags["git_commit"]
    assert commit.encode() in (project / ".w2s" / "mlflow.db").read_bytes()  # the byte scan sees logged values
    leaks = [str(p.relative_to(project.parent)) for p in files if token.encode() in p.read_bytes()]
    assert leaks == []

    # Long texts were truncated and counted, not dropped: the count the student run logged is the
    # number of transfer tweets longer than strong.max_length tokens.
    from transformers import AutoTokenizer

    from w2s.core.models.resolve import resolve_model

    (run_dir,) = (project / ".w2s" / "runs").iterdir()
    splits = pd.read_parquet(run_dir / "splits.parquet")
    transfer = splits.loc[splits["split"] == "transfer", "text"].tolist()
    lengths = [len(ids) for ids in AutoTokenizer.from_pretrained(resolve_model("minilm-l6"))(transfer)["input_ids"]]
    (student,) = [r for r in runs if r.data.tags.get("mlflow.runName") == "strong-w2s"]
    assert student.data.metrics["truncated_texts"] == sum(n > 32 for n in lengths) > 0

    # The registered model: safetensors weights, loaded from code, with every unpickler disabled.
    version = client.get_model_version_by_alias("w2s-test", "challenger").version
    dest = tmp_path / "download"  # not tmp_path itself: it holds the project (and its caches)
    dest.mkdir()
    local = Path(mlflow.artifacts.download_artifacts(f"models:/w2s-test/{version}", dst_path=str(dest),
                                                     tracking_uri=uri))
    names = [p.name for p in _files(local)]
    assert "model.safetensors" in names
    assert not [n for n in names if Path(n).suffix in PICKLE_SUFFIXES]

    import pickle

    import cloudpickle
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("the registered model tried to unpickle something")

    for mod, attr in ((pickle, "load"), (pickle, "loads"), (cloudpickle, "load"), (cloudpickle, "loads"),
                      (torch, "load")):
        monkeypatch.setattr(mod, attr, refuse)
    mlflow.set_registry_uri(uri)
    loaded = mlflow.pyfunc.load_model(str(local))
    probs = loaded.predict(["Make America great again!", "Stronger together."])
    assert probs.shape == (2, 2) and abs(float(probs.sum(axis=1).iloc[0]) - 1) < 1e-5
