"""Planted secrets reach no MLflow param, tag, metric, artifact or project file in a real run, and the
registered model loads and predicts with pickle disabled."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".ckpt", ".npy"}


def _files(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


def test_planted_secrets_reach_no_param_tag_artifact_label_or_metric_and_the_model_loads_without_pickle(
    warm_project: Path, monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path
):
    project = warm_project
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    from w2s.cli.main import main

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
    local = Path(
        mlflow.artifacts.download_artifacts(f"models:/w2s-test/{version}", dst_path=str(dest), tracking_uri=uri)
    )
    names = [p.name for p in _files(local)]
    assert "model.safetensors" in names
    assert not [n for n in names if Path(n).suffix in PICKLE_SUFFIXES]

    import pickle

    import cloudpickle
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("the registered model tried to unpickle something")

    for mod, attr in (
        (pickle, "load"),
        (pickle, "loads"),
        (cloudpickle, "load"),
        (cloudpickle, "loads"),
        (torch, "load"),
    ):
        monkeypatch.setattr(mod, attr, refuse)
    mlflow.set_registry_uri(uri)
    loaded = mlflow.pyfunc.load_model(str(local))
    probs = loaded.predict(["Make America great again!", "Stronger together."])
    assert probs.shape == (2, 2) and abs(float(probs.sum(axis=1).iloc[0]) - 1) < 1e-5
