"""The LM benchmarks' own correctness, never their speed: the LM training contenders train on the
same real tokens, the GPU check parses its arguments, has every mode, builds its decoder from a
config on a CPU, runs a mode end to end on gloo, counts model FLOPs by its stated formula, knows
its peaks, judges its targets the right way round (and none on a CPU), refuses loudly without a
GPU; the flow section's pieces work; the GPU box's wheel kit follows requirements.lock."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from bench import gpu_check
from bench import run as bench_run
from bench.lm_training import measure

TINY_LM = {"hidden": 32, "layers": 1, "heads": 4, "vocab_size": 500}


def test_w2s_and_hf_contenders_train_on_the_same_real_tokens(bundled_dir):
    # in bf16, as the GPU check runs them (the HF base loaded in bf16, its Trainer autocasting)
    names = ["w2s trainer", "HF Trainer + peft"]
    out = measure(n=24, bs=8, repeats=1, contenders=names, lm=TINY_LM, data_dir=bundled_dir, precision="bf16")
    assert out["model"]["hidden"] == 32 and out["truncated"] == 0 and out["precision"] == "bf16"
    for entry in out["contenders"].values():
        assert entry["tokens_per_s"] > 0 and np.isfinite(entry["mean_loss"])
        assert entry["padded_tokens"] >= out["real_tokens"]  # measure() raises if the real counts differ


def test_gpu_check_arguments_and_modes():
    args = gpu_check.parse_args([])
    assert args.sections == ["encoder", "lm", "hf", "flow"] and args.device == "cuda"
    assert (args.lm_hidden, args.lm_layers, args.lora_r, args.lm_seq) == (1024, 24, 16, 512)
    assert args.report == gpu_check.DEFAULT_REPORT
    # LoRA and full fine-tune, each on the torch backend, ZeRO-2 and ZeRO-3
    kinds = {(m.split("-")[1], m.split("-")[2]) for m in gpu_check.LM_MODES}
    assert kinds == {(k, b) for k in ("lora", "full") for b in ("torch", "zero2", "zero3")}
    tiny = gpu_check.parse_args(["--sections", "lm", "--device", "cpu", "--tiny"])
    assert tiny.sections == ["lm"] and tiny.lm_hidden == gpu_check.TINY["lm_hidden"]
    cmd = gpu_check._command(tiny, "lm-full-zero3", 1)
    assert cmd[cmd.index("--child") + 1] == "lm-full-zero3" and cmd[cmd.index("--device") + 1] == "cpu"
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--sections", "warp"])
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--lm-seq", "1024"])


def test_peak_flops_by_gpu_name():
    assert gpu_check.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert gpu_check.peak_tflops("NVIDIA H200") == 989.0
    assert gpu_check.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu_check.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert gpu_check.peak_tflops("Some Future GPU") is None
    assert gpu_check.peak_tflops("NVIDIA A100-SXM4-80GB", override=100.0) == 100.0


@pytest.mark.parametrize("r", [0, 4])
def test_the_check_decoder_is_built_from_a_config_and_its_flops_follow_the_formula(tmp_path, r):
    from w2s.core.config import EncoderTrainConfig
    from w2s.core.models.classifier import build_classifier

    info = gpu_check.build_lm(tmp_path / "lm", hidden=64, layers=2, heads=4, vocab=700, max_positions=64)
    config = json.loads((tmp_path / "lm" / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["vocab_size"] == 700 and config["num_hidden_layers"] == 2
    assert info["params"] > 0 and (tmp_path / "lm" / "tokenizer.json").is_file()
    _, model = build_classifier(EncoderTrainConfig(model=str(tmp_path / "lm"), lora={"r": r}), 2, seed=0)
    ids = torch.randint(1, 700, (2, 16))
    assert model(ids, torch.ones_like(ids)).shape == (2, 2)  # it runs, vocabulary beyond the tokenizer's
    f = gpu_check.lm_flops_per_token(model, seq=16)
    base = model.encoder.get_base_model() if r else model.encoder
    matrices = sum(
        m.weight.numel() for n, m in base.named_modules() if isinstance(m, torch.nn.Linear) and "lora_" not in n
    )
    head = model.head.weight.numel()
    attention = 12 * 2 * 16 * 64
    if r:  # frozen base: forward + activation gradients; adapters and head: 6 each
        lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
        assert f["frozen_matrix_params"] == matrices
        assert f["flops_per_token"] == 4 * matrices + 6 * (lora + head) + attention
    else:  # a full fine-tune: the usual 6 N
        assert f["frozen_matrix_params"] == 0
        assert f["flops_per_token"] == 6 * (matrices + head) + attention


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_gpu_check_refuses_loudly_without_cuda(capsys):
    assert gpu_check.main(["--sections", "lm"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_lm_ratios_are_judged_the_right_way_round():
    report = {
        "lm_training": {
            "contenders": {
                "w2s trainer": {"tokens_per_s": 1300.0},
                "HF Trainer + peft": {"tokens_per_s": 1000.0},
                "HF Trainer + peft (group_by_length)": {"tokens_per_s": 1200.0},
                "w2s trainer bf16": {"tokens_per_s": 650.0},
            }
        }
    }
    rows = {name: (round(value, 3), met) for name, value, _, met in bench_run.ratios(report)}
    assert rows["LM training: w2s / HF Trainer + peft (tokens/s)"] == (1.3, True)
    assert rows["LM training: w2s bf16 / fp32 (tokens/s)"] == (0.5, None)


def test_a_zero3_lora_mode_runs_end_to_end_on_gloo_and_reports_the_plan(tmp_path):
    args = gpu_check.parse_args(["--device", "cpu", "--tiny", "--gpus", "1"])
    info = gpu_check.build_lm(tmp_path / "lm", 64, 2, 4, 512, max_positions=64)
    args.lm_dir = info["folder"]
    env = {**os.environ, "PYTHONPATH": str(gpu_check.REPO)}
    result = gpu_check._run_mode(args, "lm-lora-zero3", env)
    assert "error" not in result, result
    assert result["backend"] == "zero3" and result["lora_r"] == gpu_check.TINY["lora_r"] and result["gpus"] == 1
    assert result["tokens_per_s"] > 0 and result["plan_gib"] > 0 and result["plan_error"] is None  # no GPU peak
    assert 0 < result["trainable_params"] < result["params"]


def _report(device: str) -> dict:
    rows = [
        ("lm-full-torch", 1000.0, 0.45),
        ("lm-full-zero2", 950.0, 0.4),
        ("lm-full-zero3", 500.0, 0.2),
        ("lm-lora-torch", 800.0, 0.2),
        ("lm-lora-zero2", 700.0, 0.3),
        ("lm-lora-zero3", 600.0, 0.25),
    ]
    results = [{"mode": m, "tokens_per_s": t, "mfu": f, "plan_error": 0.1} for m, t, f in rows]
    results[-1]["seconds_per_100_steps"] = 75.0
    return {"device": device, "results": results, "hf": {"ratio": 1.3}, "flow": {"ok": True}}


def test_the_targets_are_judged_the_right_way_round_and_never_on_a_cpu():
    judged = {t["target"]: (t.get("value"), t["met"]) for t in gpu_check.targets(_report("NVIDIA H200"), 1024)}
    assert judged["MFU, full fine-tune, torch backend"] == (0.45, True)
    assert judged["MFU, LoRA, torch"] == (0.2, False) and judged["MFU, LoRA, zero2"] == (0.3, True)
    assert judged["full: ZeRO-2 / torch tokens/s"] == (0.95, True)
    assert judged["full: ZeRO-3 / torch tokens/s"] == (0.5, False)
    assert judged["lora: ZeRO-3 / torch tokens/s"] == (0.75, True)
    assert judged["LoRA ZeRO-3: seconds per 100 steps"] == (75.0, False)
    assert judged["w2s / HF Trainer + peft tokens/s"] == (1.3, True)
    assert judged["|w2s plan / peak - 1|, lm-full-torch"] == (0.1, True)
    # the 1.2B decoder's LoRA goal is 35 %
    big = {t["target"]: t["met"] for t in gpu_check.targets(_report("NVIDIA H200"), 2048)}
    assert big["MFU, LoRA, zero2"] is False
    cpu = gpu_check.targets(_report("cpu"), 1024)
    assert all(t["met"] is None for t in cpu if "flow" not in t["target"])


def test_the_flow_reads_the_last_json_document_and_its_tiny_settings_are_valid(tmp_path):
    from bench import gpu_flow
    from w2s.config import load_config

    printed = '[2026] [WARNING] a library\'s line on stdout\n{\n  "metrics": {"w2s_acc": 0.5}\n}\n'
    assert gpu_flow.json_output(printed) == {"metrics": {"w2s_acc": 0.5}}
    for size in gpu_flow.SIZES.values():
        cfg = load_config(gpu_flow.REPO / "params.yaml", [*gpu_flow.STUDENT, *size["sets"]])
        assert cfg.strong.lora.r == 8 and cfg.strong.precision == "bf16"
    env = gpu_flow.environment(tmp_path, tmp_path / "proj", hide_gpu=True)
    assert env["CUDA_VISIBLE_DEVICES"] == "" and str(gpu_flow.REPO) in env["PYTHONPATH"].split(os.pathsep)
    assert "MLFLOW_TRACKING_URI" not in env and env["PREFECT_HOME"].startswith(str(tmp_path))


def test_the_gpu_kit_is_what_the_box_lacks_at_the_locked_versions():
    from packaging.utils import canonicalize_name

    from bench import gpu_kit

    kit = gpu_kit.kit("3.12")
    pins = gpu_kit.lock_versions()
    assert all(pins[name] == version for name, version in kit.items()), "every wheel at the lock's version"
    present = {canonicalize_name(n) for n in gpu_kit.PRESENT}
    assert not present & kit.keys(), "nothing the box already has"
    assert {"torch", "transformers", "peft", "accelerate", "pandas", "pyarrow", "scikit-learn", "numpy"} <= present
    needed = {"prefect", "dvc", "great-expectations", "pydantic", "hjson", "deepspeed", "mlflow-skinny"}
    assert needed <= kit.keys() and {"sqlalchemy", "alembic"} <= kit.keys(), "the SQLite tracking store's"
    assert "mlflow" not in kit, "mlflow-skinny stands in for mlflow (no web UI)"
    roots = tuple(r for n in gpu_kit.NEEDED for r in gpu_kit.STAND_INS.get(n, (n,)))
    full = gpu_kit.closure(roots, frozenset(present), "3.12")
    assert full >= gpu_kit.NOT_IMPORTED, "no stale names in NOT_IMPORTED"
    assert full - gpu_kit.NOT_IMPORTED == kit.keys()


def test_the_kit_is_split_into_transferable_parts(tmp_path, bundled_dir):
    from bench import gpu_kit

    out = tmp_path / "kit"
    (out / "all").mkdir(parents=True)
    sizes = {"alpha": 3, "beta": 2, "gamma": 2, "delta": 1}  # MiB
    for name, mib in sizes.items():
        (out / "all" / f"{name}-1.0-py3-none-any.whl").write_bytes(b"0" * mib * 2**20)
    (out / "packages.txt").write_text("".join(f"{n}==1.0\n" for n in sizes))
    parts = gpu_kit.split(out, part_mib=4)
    assert [sorted(p) for p in parts] == [
        ["alpha-1.0-py3-none-any.whl", "delta-1.0-py3-none-any.whl"],
        ["beta-1.0-py3-none-any.whl", "gamma-1.0-py3-none-any.whl"],
    ]
    assert (out / "part2" / "data" / "election-tweets-2016.tab").read_bytes() == (
        bundled_dir / "election-tweets-2016.tab"
    ).read_bytes()
    lines = (out / "install.txt").read_text().splitlines()
    assert lines == [
        f"python3 -m pip install --no-index --no-deps --upgrade --target .w2s/gpu-site {out}/part{i}/*.whl"
        for i in (1, 2)
    ]
    (out / "all").mkdir()
    (out / "packages.txt").write_text("alpha==1.0\nmissing==2.0\n")
    with pytest.raises(SystemExit, match="wheels for 2 packages"):
        gpu_kit.split(out, part_mib=4)
