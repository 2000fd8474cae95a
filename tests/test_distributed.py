"""DeepSpeed strong training: config generation, launch commands, memory planning, and real
2-rank CPU (gloo) runs of ZeRO-2 and ZeRO-3 on a tiny config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from w2s.config import load_config
from w2s.core.cache import ArtifactCache
from w2s.errors import ConfigError
from w2s.pipeline import steps
from w2s.pipeline.distributed.dsconfig import generate, resolve
from w2s.pipeline.distributed.launch import (
    DistributedTrainingError,
    hostfile_slots,
    launch_command,
)
from w2s.project import Project

from conftest import make_project, publish


def test_generated_config_follows_the_typed_settings():
    cfg = load_config(None, ["strong.batch_size=32", "strong.deepspeed.stage=3", "strong.deepspeed.grad_accum=2",
                             "strong.deepspeed.offload_optimizer=true", "strong.deepspeed.offload_params=true",
                             "strong.deepspeed.precision=bf16", "strong.deepspeed.grad_clip=0.5"])
    ds = generate(cfg.strong, world=4)
    assert ds["train_batch_size"] == 32 and ds["train_micro_batch_size_per_gpu"] == 4
    assert ds["gradient_accumulation_steps"] == 2 and ds["gradient_clipping"] == 0.5
    zero = ds["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_optimizer"]["device"] == "cpu"
    assert zero["offload_param"]["device"] == "cpu" and zero["stage3_gather_16bit_weights_on_model_save"]
    assert ds["bf16"] == {"enabled": True} and "fp16" not in ds


@pytest.mark.parametrize("overrides, message", [
    (["strong.batch_size=30"], "not divisible by processes x grad_accum = 4 x 1"),
    (["strong.deepspeed.stage=0", "strong.deepspeed.offload_optimizer=true"], "needs ZeRO stage 1"),
    (["strong.deepspeed.stage=2", "strong.deepspeed.offload_params=true"], "needs ZeRO stage 3"),
])
def test_impossible_deepspeed_settings_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        generate(load_config(None, overrides).strong, world=4)


def test_an_explicit_json_config_replaces_the_generated_one(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 1}, "gradient_clipping": 2.0}))
    cfg = load_config(None, ["strong.batch_size=16", "strong.deepspeed.config_file=ds.json"])
    ds = resolve(cfg.strong, world=2, project_root=tmp_path)
    assert ds["zero_optimization"] == {"stage": 1} and ds["train_micro_batch_size_per_gpu"] == 8
    path.write_text(json.dumps({"train_batch_size": 64}))
    with pytest.raises(ConfigError, match="train_batch_size 64 differs from strong.batch_size 16"):
        resolve(cfg.strong, world=2, project_root=tmp_path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        resolve(cfg.strong, world=2, project_root=tmp_path)


def test_launch_commands_and_hostfiles(tmp_path):
    job = tmp_path / "job.json"
    cmd = launch_command(load_config(None, ["strong.distributed.processes=2"]), job)
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and cmd[cmd.index("--nproc_per_node") + 1] == "2"
    assert cmd[-3:] == ["-m", "w2s.pipeline.distributed.worker", str(job)]
    hosts = tmp_path / "hostfile"
    hosts.write_text("# two nodes\nworker-1 slots=4\nworker-2 slots=4  # second\n")
    assert hostfile_slots(hosts) == 8
    cmd = launch_command(load_config(None, [f"strong.distributed.hostfile={hosts}"]), job)
    assert cmd[1:3] == ["-m", "deepspeed.launcher.runner"] and cmd[cmd.index("--hostfile") + 1] == str(hosts)
    assert cmd[-3:] == ["--module", "w2s.pipeline.distributed.worker", str(job)]
    hosts.write_text("worker-1\n")
    with pytest.raises(DistributedTrainingError, match="expected 'host slots=N'"):
        hostfile_slots(hosts)


def test_frozen_mode_cannot_use_deepspeed():
    with pytest.raises(ConfigError, match="needs strong.mode=finetune"):
        load_config(None, ["strong.backend=deepspeed", "strong.mode=frozen"])


def test_half_precision_without_a_gpu_is_refused_before_any_rank_starts(tmp_path):
    import torch

    from w2s.pipeline.distributed.launch import check_device

    cfg = load_config(None, ["strong.deepspeed.precision=bf16"])
    if torch.cuda.is_available():
        check_device(cfg.strong)  # fine on a GPU machine
    else:
        with pytest.raises(ConfigError, match="precision=bf16 needs a CUDA device"):
            check_device(cfg.strong)
    check_device(load_config(None, []).strong)


def test_plan_counts_parameters_without_loading_weights_and_orders_the_stages(capsys):
    from cli.main import main
    from w2s.core.models.classifier import build_classifier
    from w2s.core.plan import count_params, estimate

    total, largest = count_params("minilm-l6", None)
    _, model = build_classifier("minilm-l6", 2, None, seed=0)
    assert total == sum(p.numel() for p in model.encoder.parameters())
    rows = {(r["stage"], r["offload"]): r for r in estimate(total, largest, 8, 1)}
    assert rows[(0, "none")]["gpu_bytes"] == 16 * total
    gpu = [rows[(s, "none")]["gpu_bytes"] for s in (0, 1, 2)]
    assert gpu == sorted(gpu, reverse=True), "each stage shards more"
    assert rows[(3, "optimizer+params")]["gpu_bytes"] < rows[(3, "none")]["gpu_bytes"]
    capsys.readouterr()
    assert main(["plan", "--gpus", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == total and len(out["rows"]) == 7


@pytest.mark.slow
def test_plan_for_mpnet_base(capsys):
    from cli.main import main

    assert main(["plan", "--set", "strong.model=mpnet-base", "--gpus", "4", "--nodes", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 109e6 < out["params"] < 110e6 and out["nodes"] == 2


# ---- real ranks ------------------------------------------------------------------------------

TINY_DS = ["strong.num_layers=1", "strong.max_length=16", "strong.batch_size=16", "strong.epochs=1",
           "strong.evals_per_epoch=2", "strong.dropout=0.0", "strong.early_stopping=none",
           "split.transfer=64", "split.val=32", "split.test=100", "split.weak_train=40",
           "data.max_rows=400", "registry.enabled=false"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, bundled_dir):
    """Splits and weak labels of a tiny real task, shared by the rank tests."""
    root = make_project(tmp_path_factory.mktemp("ds") / "proj", bundled_dir)
    cfg = load_config(root / "params.yaml", TINY_DS)
    out = root / "out"
    out.mkdir()
    table = steps.ingest(cfg, Project(root), out)
    splits, _ = steps.make_splits(table, cfg, out)
    cache = ArtifactCache(root / ".w2s" / "cache")
    labels = publish(splits, steps.train_weak(splits, cfg, cache), table, out / "labels.parquet")
    return root, splits, labels


def _student(tiny, tmp_path, *overrides):
    from w2s.pipeline.strong import StudentRun, train_strong

    root, splits, labels = tiny
    cfg = load_config(root / "params.yaml", [*TINY_DS, *overrides])
    return train_strong(splits, StudentRun.with_method(cfg, labels), ArtifactCache(tmp_path / "cache"))


def _weights(ref) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(ref.dir) / "model" / "model.safetensors"))


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def torch_reference(tiny, tmp_path_factory):
    return _student(tiny, tmp_path_factory.mktemp("torch"), "strong.backend=torch")


@pytest.mark.slow
@pytest.mark.parametrize("stage, accum, launcher", [
    (2, 1, "torchrun"), (3, 1, "torchrun"), (2, 2, "torchrun"), (2, 1, "deepspeed"),
])
def test_two_ranks_shard_the_data_and_match_one_process(tiny, torch_reference, tmp_path, stage, accum, launcher):
    ref = _student(tiny, tmp_path, "strong.backend=deepspeed", "strong.distributed.processes=2",
                   f"strong.deepspeed.stage={stage}", f"strong.deepspeed.grad_accum={accum}",
                   f"strong.distributed.launcher={launcher}")
    assert ref.info["ranks"]["ds_config"]["gradient_accumulation_steps"] == accum
    info = ref.info
    assert info["backend"] == "deepspeed" and info["ranks"]["world_size"] == 2
    shards = json.loads((Path(ref.dir) / "shards.json").read_text())
    seen0, seen1 = set(shards["0"]), set(shards["1"])
    transfer = set(pd.read_parquet(tiny[1].path).query("split == 'transfer'")["id"])
    assert not seen0 & seen1, "the ranks' shares are disjoint"
    assert seen0 | seen1 == transfer and len(shards["0"]) == len(shards["1"]) == len(transfer) // 2
    # same global batch, same init, no dropout: the weights agree with the plain loop
    diff = _max_diff(_weights(ref), _weights(torch_reference))
    assert diff < 1e-4, f"ZeRO-{stage} x 2 ranks vs 1 process: max |dw| = {diff:.2e}"
    a = np.stack(steps.predictions(ref, "test")["probs"])
    b = np.stack(steps.predictions(torch_reference, "test")["probs"])
    assert np.abs(a - b).max() < 1e-3


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_and_ends_the_same(tiny, torch_reference, tmp_path,
                                                                   monkeypatch):
    from w2s.pipeline.distributed.runner import FAULT_ENV

    args = ("strong.backend=deepspeed", "strong.distributed.processes=2", "strong.deepspeed.stage=2",
            "strong.distributed.checkpoint_every=2")
    monkeypatch.setenv(FAULT_ENV, "2")
    with pytest.raises(DistributedTrainingError, match=r"2 ranks\): "):
        _student(tiny, tmp_path, *args)
    checkpoints = list((tmp_path / "cache" / "checkpoints").iterdir())
    assert len(checkpoints) == 1 and (checkpoints[0] / "latest").read_text().strip() == "step2"
    assert not list((tmp_path / "cache" / "strong").glob("[!.]*")), "no half-written model entry"
    monkeypatch.delenv(FAULT_ENV)
    ref = _student(tiny, tmp_path, *args)
    assert ref.info["ranks"]["resumed_from_step"] == 2
    assert not checkpoints[0].exists(), "checkpoints are removed once the run finished"
    diff = _max_diff(_weights(ref), _weights(torch_reference))
    assert diff < 1e-4, f"resumed run vs uninterrupted: max |dw| = {diff:.2e}"


@pytest.mark.slow
def test_a_failing_rank_fails_the_step_with_its_error(tiny, tmp_path, monkeypatch):
    # DeepSpeed itself rejects this config inside every rank (the parent only checks batch sizes)
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 9}}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DistributedTrainingError, match=r"\(w2s, 2 ranks\): rank 0 failed: ValidationError: .*stage"):
        _student(tiny, tmp_path, "strong.backend=deepspeed", "strong.distributed.processes=2",
                 "strong.deepspeed.config_file=ds.json")
    assert not list((tmp_path / "cache" / "strong").glob("[!.]*"))


@pytest.mark.slow
def test_the_pipeline_runs_on_the_deepspeed_backend(project):
    from mlflow import MlflowClient

    from flows.pipeline import pipeline

    cfg = load_config(project / "params.yaml", ["strong.backend=deepspeed", "strong.distributed.processes=2",
                                                "strong.deepspeed.stage=3"])
    result = pipeline(config=cfg.model_dump(mode="json"), project_dir=str(project))
    assert result.model["version"] == "1"
    for key in ("weak_acc", "w2s_acc", "ceiling_acc"):
        assert 0.0 <= result.metrics[key] <= 1.0
    client = MlflowClient()
    parent = client.get_run(result.mlflow_run_id)
    children = {r.info.run_name: r for r in client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")}
    student = children["strong-w2s"]
    assert student.data.params["strong.backend"] == "deepspeed"
    assert student.data.tags["backend"] == "deepspeed" and student.data.tags["world_size"] == "2"


@pytest.mark.parametrize("overrides, message", [
    (["strong.distributed.processes=3"], "not divisible by processes x grad_accum = 3 x 1"),
    (["strong.distributed.hostfile=nohosts"], "hostfile not found"),
    (["strong.deepspeed.config_file=missing.json"], "config_file not found"),
])
def test_run_refuses_impossible_rank_settings_before_training(project, capsys, overrides, message):
    from cli.main import main

    args = ["run", "--set", "strong.backend=deepspeed"]
    for o in overrides:
        args += ["--set", o]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (project / ".w2s" / "runs").exists(), "nothing ran"
