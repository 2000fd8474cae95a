"""The LM benchmarks' own correctness, never their speed: the LM training contenders train on the
same real tokens, the GPU check parses its arguments, builds its decoder from a config on a CPU,
counts model FLOPs by its stated formula, knows its peaks, and refuses loudly without a GPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench import gpu_check
from bench import run as bench_run
from bench.lm_training import measure

TINY_LM = {"hidden": 32, "layers": 1, "heads": 4, "vocab_size": 500}


def test_w2s_and_hf_contenders_train_on_the_same_real_tokens(bundled_dir):
    out = measure(
        n=24, bs=8, repeats=1, contenders=["w2s trainer", "HF Trainer + peft"], lm=TINY_LM, data_dir=bundled_dir
    )
    assert out["model"]["hidden"] == 32 and out["truncated"] == 0
    for entry in out["contenders"].values():
        assert entry["tokens_per_s"] > 0 and np.isfinite(entry["mean_loss"])
        assert entry["padded_tokens"] >= out["real_tokens"]  # measure() raises if the real counts differ


def test_gpu_check_arguments():
    args = gpu_check.parse_args([])
    assert args.sections == ["encoder", "lm"] and args.device == "cuda"
    assert (args.lm_hidden, args.lm_layers, args.lora_r, args.lm_seq) == (1024, 24, 16, 512)
    tiny = gpu_check.parse_args(["--sections", "lm", "--device", "cpu", "--tiny"])
    assert tiny.sections == ["lm"] and tiny.lm_hidden == gpu_check.TINY["lm_hidden"]
    cmd = gpu_check._command(tiny, "lm-zero3", 1)
    assert cmd[cmd.index("--child") + 1] == "lm-zero3" and cmd[cmd.index("--device") + 1] == "cpu"
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
