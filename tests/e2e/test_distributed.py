"""DeepSpeed strong training end to end: real 2-rank CPU (gloo) runs of ZeRO-2 and ZeRO-3 on a tiny config
matching the single-process loop (an encoder, and a decoder LM with LoRA in fp32 and bf16), resuming
from a checkpoint, a failing rank, the whole flow on the DeepSpeed backend with a weak LM and a
LoRA bf16 student, and the memory plan of mpnet-base. Rank 0's progress lines reach the parent's stderr."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from w2s.config import load_config
from w2s.core.cache import ArtifactCache
from w2s.core.progress import ENV as PROGRESS_ENV
from w2s.core.progress import MARKER
from w2s.pipeline import data_steps, predictions, weak_model
from w2s.pipeline.distributed.launch import (
    DistributedTrainingError,
)
from w2s.project import Project

from conftest import make_project, publish


def test_plan_for_mpnet_base(capsys):
    from w2s.cli.main import main

    assert main(["plan", "--set", "strong.model=mpnet-base", "--gpus", "4", "--nodes", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 109e6 < out["params"] < 110e6 and out["nodes"] == 2


TINY_DS = [
    "strong.num_layers=1",
    "strong.max_length=16",
    "strong.batch_size=16",
    "strong.epochs=1",
    "strong.evals_per_epoch=2",
    "strong.dropout=0.0",
    "strong.early_stopping=none",
    "split.transfer=64",
    "split.val=32",
    "split.test=100",
    "split.weak_train=40",
    "data.max_rows=400",
    "registry.enabled=false",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, bundled_dir):
    """Splits and weak labels of a tiny real task, shared by the rank tests."""
    root = make_project(tmp_path_factory.mktemp("ds") / "proj", bundled_dir)
    cfg = load_config(root / "params.yaml", TINY_DS)
    out = root / "out"
    out.mkdir()
    table = data_steps.ingest(cfg, Project(root), out)
    splits, _ = data_steps.make_splits(table, cfg, out)
    cache = ArtifactCache(root / ".w2s" / "cache")
    labels = publish(splits, weak_model.train_weak(splits, cfg, cache), table, out / "labels.parquet")
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


@pytest.mark.parametrize(
    "stage, accum, launcher",
    [
        (2, 1, "torchrun"),  # ZeRO-3's parity: the LoRA decoder's test below
        (2, 2, "deepspeed"),  # gradient accumulation, through DeepSpeed's own launcher
    ],
)
def test_two_ranks_shard_the_data_and_match_one_process(
    tiny, torch_reference, tmp_path, stage, accum, launcher, monkeypatch, capfd
):
    monkeypatch.setenv(PROGRESS_ENV, "0")  # a progress line at every step, in a run of a few steps
    ref = _student(
        tiny,
        tmp_path,
        "strong.backend=deepspeed",
        "strong.distributed.processes=2",
        f"strong.deepspeed.stage={stage}",
        f"strong.deepspeed.grad_accum={accum}",
        f"strong.distributed.launcher={launcher}",
    )
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
    a = np.stack(predictions.predictions(ref, "test")["probs"])
    b = np.stack(predictions.predictions(torch_reference, "test")["probs"])
    assert np.abs(a - b).max() < 1e-3
    # rank 0's progress reached this process's stderr through the launcher, unmarked; rank 1 kept quiet
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("strong-w2s (2 ranks): ")]
    assert [ln.split(",")[0].split(": ")[1] for ln in lines] == [
        *(f"step {i}/4 ({25 * i}%)" for i in range(1, 5)),
        "step 4/4 (100%)",
    ], err[-2000:]
    assert "examples/s, ETA " in lines[0] and ", done in " in lines[-1] and MARKER not in err


def test_a_failing_rank_fails_the_step_with_its_error(tiny, tmp_path, monkeypatch):
    # DeepSpeed itself rejects this config inside every rank (the parent only checks batch sizes)
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 9}}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DistributedTrainingError, match=r"\(w2s, 2 ranks\): rank 0 failed: ValidationError: .*stage"):
        _student(
            tiny,
            tmp_path,
            "strong.backend=deepspeed",
            "strong.distributed.processes=2",
            "strong.deepspeed.config_file=ds.json",
        )
    assert not list((tmp_path / "cache" / "strong").glob("[!.]*"))


def test_a_hung_rank_is_stopped_at_the_time_limit_with_every_other_rank(tiny, tmp_path, monkeypatch):
    """Rank 1 never joins, so rank 0 waits at the rendezvous: only the launch's time limit ends
    it. The step fails with that reason, and no process of the launch is left running."""
    import subprocess

    from w2s.pipeline.distributed.worker import HANG_ENV

    monkeypatch.setenv(HANG_ENV, "1")
    start = time.perf_counter()
    with pytest.raises(DistributedTrainingError, match=r"did not finish within 20 s .*every rank was stopped"):
        _student(
            tiny,
            tmp_path,
            "strong.backend=deepspeed",
            "strong.distributed.processes=2",
            "strong.distributed.timeout_s=20",
        )
    assert time.perf_counter() - start < 120
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "cache")], capture_output=True, text=True).stdout
    assert left.strip() == "", f"processes of the launch still running: {left}"
    assert not list((tmp_path / "cache" / "strong").glob("[!.]*"))


def test_the_pipeline_runs_a_weak_lm_and_a_lora_bf16_student_on_zero3(project, tiny_lms):
    from mlflow import MlflowClient

    from w2s.flows.pipeline import pipeline

    cfg = load_config(
        project / "params.yaml",
        [
            "weak.kind=encoder",
            f"weak.encoder.model={tiny_lms['small']}",
            f"strong.model={tiny_lms['big']}",
            "strong.lora.r=8",
            "strong.precision=bf16",
            "strong.backend=deepspeed",
            "strong.distributed.processes=2",
            "strong.deepspeed.stage=3",
        ],
    )
    result = pipeline(config=cfg.model_dump(mode="json"), project_dir=str(project))
    assert result.model["version"] == "1"
    for key in ("weak_acc", "w2s_acc", "ceiling_acc"):
        assert 0.0 <= result.metrics[key] <= 1.0
    client = MlflowClient()
    parent = client.get_run(result.mlflow_run_id)
    children = {
        r.info.run_name: r
        for r in client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    }
    for stage in ("strong-w2s", "strong-ceiling"):
        run = children[stage]
        assert run.data.params["strong.backend"] == "deepspeed" and run.data.params["strong.lora.r"] == "8"
        assert run.data.tags["backend"] == "deepspeed" and run.data.tags["world_size"] == "2"
    assert parent.data.tags["strong_adapter"] == "lora r=8 alpha=16"


# A tiny Qwen2 decoder with LoRA adapters: the ZeRO-2/3 path a 7B student takes.
LM_DS = ["strong.lora.r=4", "strong.lora.dropout=0.0", "strong.lr=1e-3"]


@pytest.fixture(scope="module")
def lm_reference(tiny, tiny_lms, tmp_path_factory):
    """The single-process loop's LoRA student, per precision (built on first use)."""
    built: dict[str, object] = {}

    def get(precision: str):
        if precision not in built:
            built[precision] = _student(
                tiny,
                tmp_path_factory.mktemp(f"lm-{precision}"),
                f"strong.model={tiny_lms['big']}",
                *LM_DS,
                f"strong.precision={precision}",
            )
        return built[precision]

    return get


def _lora_rel_diff(ours: dict, reference: dict) -> float:
    """||B - B_ref|| / ||B_ref|| over the LoRA B matrices (they start at zero: this is relative to
    what training changed)."""
    keys = [k for k in reference if "lora_B" in k]
    num = sum(float(((ours[k].float() - reference[k].float()) ** 2).sum()) for k in keys)
    return (num / sum(float((reference[k].float() ** 2).sum()) for k in keys)) ** 0.5


def _lm_ds_args(tiny_lms, stage: int, precision: str) -> list[str]:
    return [
        f"strong.model={tiny_lms['big']}",
        *LM_DS,
        f"strong.precision={precision}",
        "strong.backend=deepspeed",
        "strong.distributed.processes=2",
        f"strong.deepspeed.stage={stage}",
    ]


@pytest.fixture(scope="module")
def lm_ds_run(tiny, tiny_lms, tmp_path_factory):
    """Two-rank LoRA decoder runs, per (stage, precision), built on first use and shared."""
    built: dict[tuple[int, str], object] = {}

    def get(stage: int, precision: str):
        if (stage, precision) not in built:
            folder = tmp_path_factory.mktemp(f"lm-zero{stage}-{precision}")
            built[stage, precision] = _student(tiny, folder, *_lm_ds_args(tiny_lms, stage, precision))
        return built[stage, precision]

    return get


@pytest.mark.parametrize("stage, precision", [(3, "fp32"), (2, "bf16"), (3, "bf16")])
def test_a_lora_decoder_on_two_ranks_matches_one_process(lm_ds_run, lm_reference, stage, precision):
    ref = lm_ds_run(stage, precision)
    assert ("bf16" in ref.info["ranks"]["ds_config"]) == (precision == "bf16")
    ours, reference = _weights(ref), _weights(lm_reference(precision))
    trained = {k for k in reference if "lora_" in k or k.startswith("head.")}
    base = reference.keys() - trained
    assert base and all(torch.equal(ours[k], reference[k]) for k in base), "the frozen base never moves"
    if precision == "fp32":
        diff = _max_diff({k: ours[k] for k in trained}, {k: reference[k] for k in trained})
        assert diff < 1e-4, f"ZeRO-{stage} x 2 ranks vs 1 process: max |dw| = {diff:.2e}"
    else:
        # DeepSpeed trains bf16 weights with fp32 masters; the plain loop fp32 weights under
        # autocast: the same updates up to bf16 rounding (measured: 3 % of the adapters' change)
        rel = _lora_rel_diff(ours, reference)
        assert rel < 0.1, f"ZeRO-{stage} bf16 x 2 ranks vs 1 process: adapters differ by {rel:.1%}"
    a = np.stack(predictions.predictions(ref, "test")["probs"])
    b = np.stack(predictions.predictions(lm_reference(precision), "test")["probs"])
    assert np.abs(a - b).max() < (1e-3 if precision == "fp32" else 2e-2)


def test_a_killed_lora_bf16_zero3_run_resumes_from_its_checkpoint(tiny, tiny_lms, lm_ds_run, tmp_path, monkeypatch):
    from w2s.pipeline.distributed.backend import FAULT_ENV

    """Rank 0 dies after step 2 of 4; the rerun resumes from the step-2 checkpoint and ends with
    the weights of the uninterrupted run (sharded ZeRO-3 state, bf16 engine, LoRA adapters)."""
    args = (*_lm_ds_args(tiny_lms, 3, "bf16"), "strong.distributed.checkpoint_every=2")
    monkeypatch.setenv(FAULT_ENV, "2")
    with pytest.raises(DistributedTrainingError, match=r"2 ranks\): "):
        _student(tiny, tmp_path, *args)
    checkpoints = list((tmp_path / "cache" / "checkpoints").iterdir())
    assert len(checkpoints) == 1 and (checkpoints[0] / "latest").read_text().strip() == "step2"
    assert not list((tmp_path / "cache" / "strong").glob("[!.]*")), "no half-written model entry"
    monkeypatch.delenv(FAULT_ENV)
    resumed = _student(tiny, tmp_path, *args)
    assert resumed.info["ranks"]["resumed_from_step"] == 2
    assert not checkpoints[0].exists(), "checkpoints are removed once the run finished"
    diff = _max_diff(_weights(resumed), _weights(lm_ds_run(3, "bf16")))
    assert diff < 1e-6, f"resumed vs uninterrupted ZeRO-3 bf16 LoRA run: max |dw| = {diff:.2e}"
