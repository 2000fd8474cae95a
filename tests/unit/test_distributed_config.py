"""DeepSpeed strong training: config generation, launch commands, memory planning, and real
2-rank CPU (gloo) runs of ZeRO-2 and ZeRO-3 on a tiny config."""

from __future__ import annotations

import json

import pytest

from w2s.config import load_config
from w2s.core.config import EncoderTrainConfig
from w2s.errors import ConfigError
from w2s.pipeline.distributed.dsconfig import BUCKET_ELEMENTS, PERSISTENCE_ELEMENTS, generate, resolve
from w2s.pipeline.distributed.launch import (
    DistributedTrainingError,
    hostfile_slots,
    launch_command,
)


def test_generated_config_follows_the_typed_settings():
    cfg = load_config(
        None,
        [
            "strong.batch_size=32",
            "strong.deepspeed.stage=3",
            "strong.deepspeed.grad_accum=2",
            "strong.deepspeed.offload_optimizer=true",
            "strong.deepspeed.offload_params=true",
            "strong.deepspeed.precision=bf16",
            "strong.deepspeed.grad_clip=0.5",
        ],
    )
    ds = generate(cfg.strong, world=4)
    assert ds["train_batch_size"] == 32 and ds["train_micro_batch_size_per_gpu"] == 4
    assert ds["gradient_accumulation_steps"] == 2 and ds["gradient_clipping"] == 0.5
    zero = ds["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_optimizer"]["device"] == "cpu"
    assert zero["offload_param"]["device"] == "cpu" and zero["stage3_gather_16bit_weights_on_model_save"]
    assert ds["bf16"] == {"enabled": True} and "fp16" not in ds
    assert zero["overlap_comm"] and zero["contiguous_gradients"] and zero["reduce_bucket_size"] == BUCKET_ELEMENTS
    assert zero["stage3_param_persistence_threshold"] == PERSISTENCE_ELEMENTS


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_buckets_are_sized_for_small_models_and_stage_3_keeps_small_weights_whole(stage):
    zero = generate(load_config(None, [f"strong.deepspeed.stage={stage}"]).strong, world=1)["zero_optimization"]
    if stage == 0:
        assert zero == {"stage": 0}, "nothing to reduce in buckets without ZeRO"
        return
    # DeepSpeed's 5e8-element default bucket is larger than a sub-500M model's whole gradient
    assert zero["reduce_bucket_size"] == BUCKET_ELEMENTS < 5e8 and zero["overlap_comm"]
    assert ("allgather_bucket_size" in zero) == (stage < 3)
    assert ("stage3_prefetch_bucket_size" in zero) == (stage == 3)
    if stage == 3:  # a LoRA adapter of Qwen2.5-7B's widest projection at r=16 is not partitioned
        assert 16 * 18944 < zero["stage3_param_persistence_threshold"] <= 1024 * 1024


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["strong.batch_size=30"], "not divisible by processes x grad_accum = 4 x 1"),
        (["strong.deepspeed.stage=0", "strong.deepspeed.offload_optimizer=true"], "needs ZeRO stage 1"),
        (["strong.deepspeed.stage=2", "strong.deepspeed.offload_params=true"], "needs ZeRO stage 3"),
    ],
)
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


def test_fp16_without_a_gpu_is_refused_before_any_rank_starts_and_bf16_runs_on_cpu(tmp_path):
    import torch

    from w2s.pipeline.distributed.launch import check_device

    fp16 = load_config(None, ["strong.deepspeed.precision=fp16"])  # the older key still works
    assert fp16.strong.precision == "fp16"
    if torch.cuda.is_available():
        check_device(fp16.strong)  # fine on a GPU machine
    else:
        with pytest.raises(ConfigError, match="strong.precision=fp16 needs a CUDA device"):
            check_device(fp16.strong)
    check_device(load_config(None, ["strong.precision=bf16"]).strong)  # CPU autocast and DeepSpeed run bf16
    with pytest.raises(ConfigError, match="strong.precision=bf16 but strong.deepspeed.precision=fp16"):
        load_config(None, ["strong.precision=bf16", "strong.deepspeed.precision=fp16"])


def test_plan_counts_parameters_without_loading_weights_and_orders_the_stages(capsys):
    from w2s.cli.main import main
    from w2s.core.models.classifier import build_classifier
    from w2s.core.plan import count_params, estimate

    total, largest = count_params("minilm-l6", None)
    _, model = build_classifier(EncoderTrainConfig(), 2, seed=0)
    assert total == sum(p.numel() for p in model.encoder.parameters())
    rows = {(r["stage"], r["offload"]): r for r in estimate(total, largest, 8, 1)}
    assert rows[(0, "none")]["gpu_bytes"] == 16 * total
    gpu = [rows[(s, "none")]["gpu_bytes"] for s in (0, 1, 2)]
    assert gpu == sorted(gpu, reverse=True), "each stage shards more"
    assert rows[(3, "optimizer+params")]["gpu_bytes"] < rows[(3, "none")]["gpu_bytes"]
    capsys.readouterr()
    assert main(["plan", "--gpus", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == total and len(out["rows"]) == 8


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["strong.distributed.processes=3"], "not divisible by processes x grad_accum = 3 x 1"),
        (["strong.distributed.hostfile=nohosts"], "hostfile not found"),
        (["strong.deepspeed.config_file=missing.json"], "config_file not found"),
    ],
)
def test_run_refuses_impossible_rank_settings_before_training(project, capsys, overrides, message):
    from w2s.cli.main import main

    args = ["run", "--set", "strong.backend=deepspeed"]
    for o in overrides:
        args += ["--set", o]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (project / ".w2s" / "runs").exists(), "nothing ran"
