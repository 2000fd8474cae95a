"""Methods on the real tiny task: every method through `w2s sweep`, the ensemble through the full
flow (Prefect + MLflow + DVC + GX), the no-peeking guarantee on real splits, and the
distribution-shift split on the bundled newsgroups. (A method through the CLI, and a method no
module knows, are in test_dvc_repro.py.)"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from w2s.config import load_config
from w2s.core.cache import ArtifactCache
from w2s.methods import all_methods
from w2s.methods import get as get_method
from w2s.methods.base import RefiningMethod
from w2s.pipeline import data_steps, predictions, weak_model
from w2s.pipeline.sequence import run_steps
from w2s.pipeline.supervise import refine_supervisor
from w2s.project import Project

from conftest import make_project

REFINED_METHODS = sorted(n for n, m in all_methods().items() if issubclass(m, RefiningMethod))
REPO = Path(__file__).resolve().parents[2]


def test_every_method_runs_in_a_sweep_and_reports_what_it_did(warm_project, capsys):
    from w2s.cli.main import main

    project = warm_project
    shutil.copyfile(REPO / "configs" / "sweep-methods-tiny.yaml", project / "sweep.yaml")
    assert main(["sweep", "--config", "sweep.yaml"]) == 0
    out = capsys.readouterr().out
    assert "| variant | transfer label acc |" in out

    sweep_dir = next((project / ".w2s" / "sweeps").iterdir())
    rows = {r["variant"]: r for r in json.loads((sweep_dir / "points.json").read_text())}
    assert set(rows) == {"naive", *REFINED_METHODS, "perturb"}
    assert set(REFINED_METHODS) == {
        "confidence",
        "selective",
        "smooth",
        "corrector",
        "contrastive",
        "ensemble",
        "hardened",
    }
    naive = rows.pop("naive")
    for name, row in rows.items():
        assert row["reused"]["ceiling"] and row["reused"]["weak"], f"{name} shares weak model and ceiling"
        assert row["weak_acc"] == naive["weak_acc"] and 0.0 <= row["w2s_acc"] <= 1.0
        if name != "perturb":  # the one fine-tuned point has the fine-tuned ceiling
            assert row["ceiling_acc"] == naive["ceiling_acc"]
    assert 0.0 <= rows["perturb"]["flip_rate"] <= 1.0, "every fine-tuned student reports its flip rate"
    for name in REFINED_METHODS:
        row = rows[name]
        assert 0.5 < row["refined_acc"] <= 1.0 and 0.5 < row["labels_transfer_acc"] <= 1.0, name
        assert 0.0 <= row["changed_frac_transfer"] <= 1.0
    for name in ("confidence", "selective"):
        assert 0.0 <= rows[name]["self_label_frac"] <= 1.0 and 0.0 <= rows[name]["self_label_budget_acc"] <= 1.0
    hard = rows["hardened"]  # the argmax of the weak labels: same accuracy, sharper labels
    assert hard["changed_frac_transfer"] == 0.0 and hard["labels_transfer_acc"] == naive["labels_transfer_acc"]
    weights = [rows["ensemble"][f"weight.{m}"] for m in ("tfidf", "minilm-1l", "tfidf-half")]
    assert sum(weights) == pytest.approx(1.0, abs=1e-6) and min(weights) > 0
    assert rows["perturb"]["labels_transfer_acc"] == naive["labels_transfer_acc"], "same labels, new objective"
    assert rows["perturb"]["w2s_acc"] is not None

    # the strong embeddings of the split rows were computed once and shared by every method that
    # reads them; the only other entry holds the two label names the zero-shot answers compare with
    sizes = sorted(len(np.load(e / "vectors.npy")) for e in (project / ".w2s" / "cache" / "embeddings").iterdir())
    assert sizes[0] == 2 and len(sizes) == 2


def test_ensemble_in_the_flow_versions_member_labels_and_logs_the_weights(warm_project):
    from mlflow import MlflowClient

    from w2s.flows.pipeline import pipeline

    cfg = load_config(warm_project / "params.yaml", ["method=ensemble"])
    result = pipeline(config=cfg.model_dump(mode="json"), project_dir=str(warm_project))
    labels = pd.read_parquet(result.student_labels.path)
    assert list(labels.columns) == ["id", "text", "weak_probs", "weak_label", "split", "member_probs"]
    assert np.stack(labels["member_probs"].iloc[0]).shape == (3, 2)
    assert result.student_labels.members == ["tfidf", "minilm-1l", "tfidf-half"]
    dvc_file = Path(result.student_labels.path + ".dvc")
    assert f"md5: {result.student_labels.md5}" in dvc_file.read_text()

    client = MlflowClient()
    parent = client.get_run(result.mlflow_run_id)
    assert parent.data.tags["student_labels_md5"] == result.student_labels.md5
    assert parent.data.tags["weak_labels_md5"] == result.weak_labels.md5 != result.student_labels.md5
    children = {
        r.info.run_name: r
        for r in client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    }
    assert children["supervise"].data.params["method"] == "ensemble"
    student = children["strong-w2s"]
    artifacts = {a.path for a in client.list_artifacts(student.info.run_id)}
    assert {"ensemble_weights.png", "ensemble_weight_history.json"} <= artifacts
    logged = [student.data.metrics[f"weight.{m}"] for m in ("tfidf", "minilm-1l", "tfidf-half")]
    assert sum(logged) == pytest.approx(1.0, abs=1e-6)
    version = client.get_model_version_by_alias("w2s-test", "challenger")
    assert version.tags["student_labels_md5"] == result.student_labels.md5


@pytest.mark.parametrize(
    "method, sets",
    [
        ("selective", []),  # zero-shot self-labels, P(IK) on the budget
        ("corrector", []),
        ("corrector", ["corrector.features=weak"]),  # the weak model's own TF-IDF features
    ],
)
def test_refinement_never_reads_ground_truth_outside_the_weak_budget(tmp_path, bundled_dir, method, sets):
    """The same refinement on splits whose transfer/val/test labels are scrambled gives
    identical labels (separate caches, so nothing is simply reused)."""
    root = make_project(tmp_path / "proj", bundled_dir)
    cfg = load_config(root / "params.yaml", [f"method={method}", "selective.folds=3", "corrector.folds=3", *sets])
    table = data_steps.ingest(cfg, Project(root), tmp_path)
    splits, _ = data_steps.make_splits(table, cfg, tmp_path)
    cache = ArtifactCache(tmp_path / "cache-a")
    weak = weak_model.train_weak(splits, cfg, cache)
    honest = refine_supervisor(splits, weak, get_method(method)(cfg), cache)
    # the second cache starts with the weak model and the strong embeddings, which read no label
    # outside the budget either; the refined entry itself must be computed again
    for kind in ("weak", "embeddings"):
        if (tmp_path / "cache-a" / kind).is_dir():  # no embeddings: a refinement without strong features
            shutil.copytree(tmp_path / "cache-a" / kind, tmp_path / "cache-b" / kind, copy_function=os.link)

    df = pd.read_parquet(splits.path)
    rest = df["split"] != "weak_train"
    df.loc[rest, "label"] = np.random.default_rng(0).permutation(df.loc[rest, "label"].to_numpy())
    scrambled_path = tmp_path / "scrambled.parquet"
    df.to_parquet(scrambled_path, index=False)
    scrambled = type(splits)(str(scrambled_path), splits.md5, splits.label_names, splits.counts)
    other = ArtifactCache(tmp_path / "cache-b")
    weak_again = weak_model.train_weak(scrambled, cfg, other)
    again = refine_supervisor(scrambled, weak_again, get_method(method)(cfg), other)
    assert weak_again.key == weak.key and not again.reused
    a = pd.read_parquet(Path(honest.dir) / "preds.parquet")
    b = pd.read_parquet(Path(again.dir) / "preds.parquet")
    assert a["id"].tolist() == b["id"].tolist()
    assert np.array_equal(np.stack(a["probs"]), np.stack(b["probs"]))


def test_distribution_shift_holds_out_topics_and_reports_ood_metrics(tmp_path, bundled_dir):
    root = make_project(tmp_path / "proj", bundled_dir)
    for name in ("20newsgroups-train.tab", "20newsgroups-test.tab"):
        shutil.copyfile(bundled_dir / name, root / "data" / name)
    held = ["sci.space", "rec.sport.hockey"]
    cfg = load_config(
        root / "params.yaml",
        [
            "data.name=20newsgroups-super",
            "data.max_rows=2000",
            f"split.ood_groups={json.dumps(held)}",
            "split.ood_test=120",
            "split.weak_train=120",
            "method=smooth",
            "strong.max_length=16",  # the splits and the ood metrics are the subject, not the model
        ],
    )
    result = run_steps(cfg, Project(root), tmp_path / "out", ArtifactCache(tmp_path / "cache"))
    splits = pd.read_parquet(tmp_path / "out" / "splits.parquet")
    groups = splits.groupby("split")["group"].agg(set)
    assert groups["ood_test"] <= set(held)
    for split in ("weak_train", "transfer", "val", "test"):
        assert not groups[split] & set(held), f"{split} contains a held-out topic"
    assert sorted(splits["label"].unique()) == ["comp", "rec", "sci", "talk"]
    m = result.metrics
    for key in ("weak_acc_ood", "w2s_acc_ood", "ceiling_acc_ood", "refined_acc_ood", "agreement_ood"):
        assert m[key] is not None and 0.0 <= m[key] <= 1.0, key
    assert "pgr_ood" in m
    preds = predictions.predictions(result.student, "ood_test")
    assert len(preds) == 120


def test_held_out_groups_must_exist(tmp_path, bundled_dir):
    from w2s.errors import DataError

    root = make_project(tmp_path / "proj", bundled_dir)
    cfg = load_config(root / "params.yaml", ["split.ood_groups=[nonexistent]"])
    table = data_steps.ingest(cfg, Project(root), tmp_path)
    with pytest.raises(DataError, match=r"absent from the data's groups \(data.group_column\)"):
        data_steps.make_splits(table, cfg, tmp_path)


def test_raven_members_trained_on_parts_of_a_shifted_source_label_the_target(tmp_path, bundled_dir):
    """RAVEN's own setting: with split.source_groups the weak budget comes from other topics than
    transfer/val/test, and each ensemble member trains on its own part of that source."""
    root = make_project(tmp_path / "proj", bundled_dir)
    for name in ("20newsgroups-train.tab", "20newsgroups-test.tab"):
        shutil.copyfile(bundled_dir / name, root / "data" / name)
    source = {"one": ["comp.graphics", "rec.autos", "sci.crypt", "talk.politics.guns"],
              "two": ["comp.sys.mac.hardware", "rec.motorcycles", "sci.med", "talk.politics.misc"]}  # fmt: skip
    members = {name: {"groups": groups} for name, groups in source.items()}
    cfg = load_config(
        root / "params.yaml",
        [
            "data.name=20newsgroups-super",
            "data.max_rows=3000",
            f"split.source_groups={json.dumps(source['one'] + source['two'])}",
            "split.weak_train=120",
            "method=ensemble",
            f"ensemble.members={json.dumps(members)}",
        ],
    )
    table = data_steps.ingest(cfg, Project(root), tmp_path)
    splits, _ = data_steps.make_splits(table, cfg, tmp_path)
    df = pd.read_parquet(splits.path)
    budget = df[df["split"] == "weak_train"]
    assert set(budget["group"]) == set(source["one"] + source["two"])
    assert not set(df.loc[df["split"] != "weak_train", "group"]) & set(budget["group"]), "the target is shifted"
    cache = ArtifactCache(tmp_path / "cache")
    refined = refine_supervisor(splits, weak_model.train_weak(splits, cfg, cache), get_method("ensemble")(cfg), cache)
    for name, groups in source.items():
        member = json.loads((cache.path("weak", refined.info["member_cache_keys"][name]) / "info.json").read_text())
        assert member["train_examples"] == int(budget["group"].isin(groups).sum()) < len(budget), name
    assert refined.info["members"] == ["one", "two"] and 0.0 <= refined.info["all_agree_frac"] <= 1.0
