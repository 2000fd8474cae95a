"""The real flow end to end: Prefect engine, MLflow SQLite store, DVC repository and remote, GX
gates and the bundled tweets, on a tiny config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from w2s.config import load_config
from w2s.core.data.split import hash_folds
from w2s.core.metric_schema import METRICS, declared
from w2s.io import file_md5
from w2s.methods import all_metrics
from w2s.ops import digests
from w2s.ops.gc import model_id_of
from w2s.ops.tracking import LINEAGE_TAGS

if TYPE_CHECKING:
    from w2s.flows.pipeline import PipelineResult

    from conftest import TinyRun

STAGES = {
    "ingest",
    "validate-data",
    "split",
    "weak",
    "weak-labels",
    "supervise",
    "strong-w2s",
    "strong-ceiling",
    "strong-budget",
    "evaluate",
    "register",
}


def run_pipeline(project: Path, *overrides: str) -> PipelineResult:
    from w2s.flows.pipeline import pipeline

    cfg = load_config(project / "params.yaml", list(overrides))
    return pipeline(config=cfg.model_dump(mode="json"), project_dir=str(project))


def test_a_run_records_metrics_weak_labels_lineage_and_a_registered_model(tiny_run: TinyRun, tmp_path: Path) -> None:
    project, result = tiny_run.root, tiny_run.result
    metrics = result.metrics
    assert not any(result.reused.values()), "a cold project trains"

    # metrics: every contract name, sane ranges, the same numbers in both metrics.json files
    # every name is a declared metric, and every headline one of the schema is there
    assert [k for k in metrics if not declared(k, all_metrics())] == []
    always = [m.name for m in METRICS if m.compute is not None or m.name in ("n_test", "gap", "min_gap", "misfit")]
    assert set(always) <= set(metrics)
    for name in ("weak_acc", "ceiling_acc", "w2s_acc", "agreement"):
        assert 0.0 <= metrics[name] <= 1.0
    assert metrics["weak_acc"] > 0.6, "TF-IDF on tweets is far better than chance"
    assert json.loads((project / "metrics.json").read_text()) == metrics
    assert json.loads((Path(result.run_dir) / "metrics.json").read_text()) == metrics
    # the DVC plots: each strong model's evaluations during training
    curves = {k: pd.read_csv(project / "plots" / f"train_{k}.csv") for k in ("w2s", "ceiling", "budget")}
    assert all(len(c) >= 2 and c["step"].is_monotonic_increasing for c in curves.values())
    assert curves["w2s"]["val_weak_acc"].notna().all() and curves["ceiling"]["val_weak_acc"].isna().all()

    # weak-label dataset: the schema, ids aligned with the source splits, probabilities valid
    labels_path = Path(result.weak_labels.path)
    labels = pd.read_parquet(labels_path)
    assert list(labels.columns) == ["id", "text", "weak_probs", "weak_label", "split"]
    splits = pd.read_parquet(Path(result.run_dir) / "splits.parquet")
    source = splits[splits["split"].isin(["transfer", "val"])]
    assert labels["id"].tolist() == source["id"].tolist()
    assert labels["text"].tolist() == source["text"].tolist()
    sums = labels["weak_probs"].map(sum)
    assert ((sums - 1).abs() < 1e-6).all()
    assert (labels["weak_label"] == labels["weak_probs"].map(lambda p: int(max(range(2), key=p.__getitem__)))).all()
    sidecar = json.loads(labels_path.with_suffix(".json").read_text())
    assert sidecar["weak_model"]["kind"] == "tfidf" and sidecar["label_names"] == result.label_names
    assert result.student_labels == result.weak_labels, "naive: the student learns the weak labels"

    # DVC: the .dvc file, the file itself and the MLflow tag agree; the remote holds the content
    md5 = file_md5(labels_path)
    assert md5 == result.weak_labels.md5 == result.weak_labels.dvc["md5"]
    dvc_meta = (project / f"{labels_path.relative_to(project)}.dvc").read_text()
    assert f"md5: {md5}" in dvc_meta
    remote = project.parent / f"{project.name}-remote"
    assert (remote / "files" / "md5" / md5[:2] / md5[2:]).is_file()

    # MLflow: parent run with lineage tags, a nested run per stage, a registered version with alias
    client = tiny_run.client()
    parent = client.get_run(result.mlflow_run_id)
    tags = parent.data.tags
    for tag in LINEAGE_TAGS:
        assert tags.get(tag), f"parent run lacks tag {tag}"
    assert tags["weak_labels_md5"] == md5
    assert tags["data_md5"] == result.tags["data_md5"]
    assert parent.data.metrics["w2s_acc"] == pytest.approx(metrics["w2s_acc"])
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {r.info.run_name for r in children} == STAGES
    assert all(r.info.status == "FINISHED" for r in children)
    by_name = {r.info.run_name: r for r in children}
    assert "gate_weak_labels.json" in {a.path for a in client.list_artifacts(by_name["weak-labels"].info.run_id)}
    # each gate's GX Data Docs beside its JSON: an index, a page per validation result and per suite
    for stage, gate, gx_type in (
        ("validate-data", "raw_table", "expect_column_values_to_not_be_null"),
        ("split", "split_overlap", "expect_column_values_to_be_in_set"),
        ("weak-labels", "weak_labels", "expect_column_values_to_be_between"),
    ):
        run_id = by_name[stage].info.run_id
        assert f"gate_{gate}.json" in {a.path for a in client.list_artifacts(run_id)}
        docs = Path(client.download_artifacts(run_id, f"data_docs/{gate}", str(tmp_path / gate)))
        pages = {p.relative_to(docs).as_posix(): p.read_text() for p in docs.rglob("*.html")}
        validations = [k for k in pages if k.startswith("validations/")]
        assert validations and all(k in pages["index.html"] for k in validations), (gate, sorted(pages))
        assert all("fa-times text-danger" not in pages[k] for k in validations), f"{gate} passed"
        suites = "".join(v for k, v in pages.items() if k.startswith("expectations/"))
        assert f"GX type: <code>{gx_type}</code>" in suites, gate
    weak_run = client.get_run(tags["weak_model_run_id"])
    assert weak_run.info.run_name == "weak"

    # MLflow's Datasets view: the DVC version of the raw data and of the weak labels, the splits
    inputs = {d.dataset.name: d for d in parent.inputs.dataset_inputs}
    raw = inputs["election-tweets"].dataset  # this project never ran `dvc add data`: the content md5
    assert raw.source_type == "local" and raw.digest == tags["data_md5"]
    assert json.loads(raw.source)["not_in_dvc"] == tags["data_in_dvc"] != "yes"
    assert json.loads(raw.profile)["rows"] > 0
    weak_in = inputs["weak-labels"]
    assert weak_in.dataset.digest == md5 and weak_in.dataset.source_type == "dvc"
    weak_source = json.loads(weak_in.dataset.source)
    assert weak_source["dvc_file"] == f"{labels_path.relative_to(project)}.dvc"
    assert Path(weak_source["remote_url"]).resolve() == remote.resolve()
    assert {t.key: t.value for t in weak_in.tags}["mlflow.data.context"] == "training"
    split_record = json.loads(Path(client.download_artifacts(by_name["split"].info.run_id, "splits.json")).read_text())
    assert inputs["splits"].dataset.digest == split_record["md5"]

    version = client.get_model_version_by_alias("w2s-test", "challenger")
    assert str(version.version) == result.model["version"] == "1"
    for tag in LINEAGE_TAGS:
        assert version.tags[tag] == tags[tag]
    # registration records the digests every later download is checked against: the student's files
    student_model = tiny_run.cache / "strong" / version.tags["student_cache_key"] / "model"
    assert json.loads(version.tags[digests.TAG]) == digests.model_digests(student_model)
    # the evaluation metrics are linked to the logged model behind the version
    logged = client.get_logged_model(model_id_of(version))
    linked = {m.key: m for m in logged.metrics}
    assert linked["w2s_acc"].value == pytest.approx(metrics["w2s_acc"])
    assert (
        linked["w2s_acc"].dataset_name == "splits"
        and linked["w2s_acc"].dataset_digest == inputs["splits"].dataset.digest
    )

    # the registered model answers raw text in a fresh Python process
    code = (
        "import json, mlflow; m = mlflow.pyfunc.load_model('models:/w2s-test@challenger'); "
        "out = m.predict(['I will make this country great again', 'Stronger together']); "
        "print(json.dumps({'cols': list(out.columns), 'sums': out.sum(axis=1).tolist()}))"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project / '.w2s' / 'mlflow.db'}"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=project.parent, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["cols"] == result.label_names
    assert served["sums"] == pytest.approx([1.0, 1.0])


def test_the_cache_is_shared_by_content_and_a_weak_change_retrains_only_what_depends_on_it(
    warm_project: Path, tiny_run: TinyRun
) -> None:
    # a project holding the session run's cache entries: the same config reuses every one of them
    again = run_pipeline(warm_project)
    assert again.reused == {"weak": True, "w2s": True, "ceiling": True, "budget": True}
    assert again.metrics == tiny_run.result.metrics
    assert again.model["version"] == "1"

    # any weak.* change recomputes the weak model, its labels and the student, not the ceiling
    changed = run_pipeline(warm_project, "weak.tfidf.C=0.5")
    assert changed.reused == {"weak": False, "w2s": False, "ceiling": True, "budget": True}
    assert changed.weak_labels.md5 != again.weak_labels.md5
    assert changed.metrics["ceiling_acc"] == again.metrics["ceiling_acc"]
    assert changed.model["version"] == "2"


def test_unseen_multiclass_csv_runs_through_the_cli(project: Path, bundled_dir: Path, capsys) -> None:
    """A CSV with its own column names, three classes, named only on the command line."""
    from w2s.cli.main import main
    from w2s.core.data.bundled import read_tab

    r8 = read_tab(bundled_dir / "reuters-r8-train.tab")
    r8 = r8[r8["Category"].isin(["earn", "acq", "crude"])].groupby("Category").head(300)
    csv = project / "newswire.csv"
    pd.DataFrame(
        {"doc_id": [f"n{i}" for i in range(len(r8))], "body": r8["Text"].str[:300], "topic": r8["Category"]}
    ).to_csv(csv, index=False)

    code = main(
        [
            "run",
            "--set",
            "data.path=newswire.csv",
            "--set",
            "data.text_column=body",
            "--set",
            "data.label_column=topic",
            "--set",
            "data.id_column=doc_id",
            "--set",
            "registry.model_name=newswire",
            "--set",
            "strong.max_length=16",  # what is tested is the CSV's path through the CLI, not the model
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "weak-to-strong results" in out and "PGR (accuracy)" in out
    assert "w2s ui (store sqlite:///" in out and "models:/newswire@challenger" in out
    metrics = json.loads((project / "metrics.json").read_text())
    assert metrics["weak_acc"] > 0.5, "three newswire topics are easy for TF-IDF"
    assert metrics["w2s_auroc"] is not None


def test_bootstrap_trains_the_student_on_a_truncated_intermediate_and_versions_every_label_file(
    warm_project: Path, tiny_run: TinyRun
) -> None:
    from mlflow import MlflowClient

    from w2s.core.models.classifier import load_classifier

    result = run_pipeline(
        warm_project, "method=bootstrap", "bootstrap.intermediate_layers=[1]", "registry.enabled=false"
    )
    assert result.reused == {"weak": True, "w2s": False, "ceiling": True, "budget": True}, (
        "weak, ceiling, budget: naive's"
    )
    assert result.metrics["weak_acc"] == tiny_run.result.metrics["weak_acc"]
    client = MlflowClient()
    parent = client.get_run(result.mlflow_run_id)
    assert parent.data.tags["method"] == "bootstrap/xent"
    children = {
        r.info.run_name: r
        for r in client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    }
    assert "supervise" in children and "register" not in children
    assert children["supervise"].data.params["method"] == "bootstrap"
    stage_md5 = children["supervise"].data.tags["stage1_labels_md5"]

    # the student consumed the intermediate's labels, published like the weak labels
    inter = result.student_labels
    assert inter.md5 == stage_md5 != result.weak_labels.md5
    assert Path(inter.path).name.endswith("-intermediate-1l.parquet")
    assert f"md5: {stage_md5}" in Path(inter.path + ".dvc").read_text()
    labels = pd.read_parquet(inter.path)
    assert list(labels.columns) == ["id", "text", "weak_probs", "weak_label", "split"]
    assert result.model is None

    # ...cross-fitted: two intermediates, each the strong model truncated to one block, and each
    # transfer row labelled by the one that did not train on it
    cache = warm_project / ".w2s" / "cache"
    assert inter.supervisor["kind"] == "cross-fitted student (2 folds)"
    info = json.loads((cache / "crossfit" / inter.supervisor["cache_key"] / "info.json").read_text())
    transfer = labels[labels["split"] == "transfer"].reset_index(drop=True)
    fold_of = hash_folds(transfer["id"], 2, f"crossfit-{load_config(warm_project / 'params.yaml').seed}")
    assert info["fold_sizes"] == [int((fold_of == 0).sum()), int((fold_of == 1).sum())] and min(info["fold_sizes"]) > 0
    own = np.stack(transfer["weak_probs"].to_numpy())
    for k, key in enumerate(info["fold_keys"]):
        model, _, _ = load_classifier(cache / "strong" / key / "model")
        assert len(model.encoder.encoder.layer) == 1
        preds = pd.read_parquet(cache / "strong" / key / "preds.parquet")
        preds = preds[preds["split"] == "transfer"].reset_index(drop=True)
        assert list(preds["id"]) == list(transfer["id"]), "predicts every transfer row, in the split's order"
        mine = fold_of == k
        np.testing.assert_allclose(own[mine], np.stack(preds["probs"].to_numpy())[mine], rtol=1e-6)
        assert not np.allclose(own[~mine], np.stack(preds["probs"].to_numpy())[~mine]), "the other fold's rows"
    assert result.metrics["labels_transfer_acc"] != result.metrics["weak_transfer_acc"]


def test_configuring_one_project_does_not_redirect_the_next(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri / set_registry_uri export their URIs; a later project, or a process
    started from this one, must still get its own store."""
    from w2s.ops.tracking import configure
    from w2s.project import Project

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    first = configure(Project(tmp_path / "a"))
    second = configure(Project(tmp_path / "b"))
    assert first != second and str(tmp_path / "b") in second
    # nor does a process started from this one: it would resolve `models:/...` in project b's
    # registry whatever tracking URI it was given (mlflow.set_registry_uri exports it too)
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///" + str(tmp_path / "team.db"))
    assert configure(Project(tmp_path / "c")).endswith("team.db"), "a user's URI still wins"


def test_same_config_and_seed_reproduce_bit_identical_results(tmp_path, bundled_dir, monkeypatch, tiny_run):
    """Two projects, cold caches, one config and seed: identical metrics, weak labels and model
    weights on CPU; each run records the facts that would break this on other hardware."""
    from mlflow import MlflowClient

    from conftest import make_project

    def weights(root: Path) -> list[str]:
        return sorted(file_md5(p) for p in root.glob(".w2s/cache/strong/*/model/model.safetensors"))

    root = make_project(tmp_path / "second", bundled_dir)
    monkeypatch.chdir(root)
    b = run_pipeline(root)
    a = tiny_run.result
    assert not any(b.reused.values())
    assert a.metrics == b.metrics
    assert a.weak_labels.md5 == b.weak_labels.md5
    assert a.tags["student_labels_md5"] == b.tags["student_labels_md5"]
    assert len(weights(root)) == 3 and weights(root) == weights(tiny_run.root)  # student, ceiling, budget
    tags_a = tiny_run.client().get_run(a.mlflow_run_id).data.tags
    tags_b = MlflowClient(f"sqlite:///{root / '.w2s' / 'mlflow.db'}").get_run(b.mlflow_run_id).data.tags
    for tags in (tags_a, tags_b):
        assert tags["determinism.device"] == "cpu"
        assert tags["determinism.risks"] == "none known (CPU)"
        assert tags["determinism.torch"].startswith("2.")
