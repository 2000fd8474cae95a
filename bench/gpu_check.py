"""GPU check: throughput and memory of the strong model's training paths on this machine's GPUs.

Two sections, each configuration in its own process group (torchrun), through the same runners
the pipeline uses (`w2s.core.train.TorchRunner`, `w2s.pipeline.distributed.runner.DeepSpeedRunner`),
on synthetic token ids of a fixed length so that the numbers measure the training step alone:

  encoder  fine-tune the strong encoder (default mpnet-base) for a few hundred steps with the
           plain torch backend and with DeepSpeed ZeRO-2 and ZeRO-3 (bf16): examples/s, peak memory.
  lm       a randomly initialised Qwen2-style decoder (default hidden 1024, 24 layers, 16 heads,
           vocabulary 32,000: ~310M weights), built here from a config (no hub, no download; its
           tokenizer is trained on generated text), trained as a LoRA (r=16) classifier in bf16
           under ZeRO-2 and ZeRO-3: tokens/s and model FLOP utilisation (MFU) against the GPU's
           peak dense bf16 FLOP/s.

    bash bench/gpu_check.sh                               # both sections, every visible GPU
    bash bench/gpu_check.sh --sections lm --lm-steps 50   # the LM section alone
    python bench/gpu_check.py --model minilm-l6 --steps 50 --gpus 1 --sections encoder
    python bench/gpu_check.py --sections lm --device cpu --tiny   # CPU smoke run (gloo, tiny decoder)

MFU = model FLOPs per token x tokens/s per GPU / peak FLOP/s per GPU, with model FLOPs per token

    F = 2 N_frozen + 2 N_frozen + 6 N_trainable + 12 L s h

2 N forward through every matrix weight; the backward pass computes activation gradients
through the frozen base (2 N_frozen, no weight gradients) and both activation and weight
gradients of the trainable weights (4 N_trainable, so 6 in all with the forward); 12 L s h is
attention's score and mixing products (forward 4 L s h, backward 8 L s h; full, not halved for
the causal mask, as in PaLM's MFU). N counts matrix weights only (embeddings, norms and biases
excluded), L layers, s the sequence length, h the hidden size. With LoRA: F ~= 4 N + 6 N_lora;
a full fine-tune gives the usual 6 N. Activation recomputation is not model FLOPs.
The peak comes from a table by GPU name (dense bf16, no sparsity) or `--peak-tflops`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Run as a script (as gpu_check.sh and torchrun run it), Python puts bench/ first on the path,
# where bench/profile.py shadows the standard library's `profile` (which torch._dynamo imports
# when transformers loads a model): the repository root goes there instead.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)
ENCODER_MODES = ("torch", "zero2", "zero3")
LM_MODES = ("lm-zero2", "lm-zero3")
MODES = ENCODER_MODES + LM_MODES
SECTIONS = {"encoder": ENCODER_MODES, "lm": LM_MODES}

# Dense bf16 tensor-core peak per GPU, TFLOP/s (vendor data sheets, without sparsity). The first
# name fragment found in `torch.cuda.get_device_name()` wins, so the specific entries come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200 NVL", 835.0),
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100", 989.0),  # SXM
    ("A100", 312.0),
)

# The `--tiny` LM and run sizes: seconds on a CPU, for checking the code path, not for figures.
TINY = {
    "lm_hidden": 64,
    "lm_layers": 2,
    "lm_heads": 4,
    "lm_vocab": 512,
    "lm_seq": 32,
    "lm_batch": 4,
    "lm_steps": 2,
    "warmup": 1,
    "lora_r": 4,
}


def peak_tflops(device_name: str, override: float | None = None) -> float | None:
    """Peak dense bf16 TFLOP/s of the named GPU (`override` if given; None if unknown)."""
    if override:
        return override
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key.lower() in device_name.lower()), None)


def generated_texts(n: int = 2000) -> list[str]:
    """Deterministic text to train a tokenizer on, so the check needs no data on the machine."""
    words = [f"w{(i * 7919) % 1009}" for i in range(4000)]
    return [" ".join(words[(i * 13 + j * 31) % len(words)] for j in range(24)) for i in range(n)]


def build_lm(
    folder: Path,
    hidden: int,
    layers: int,
    heads: int,
    vocab: int,
    max_positions: int,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """Write a randomly initialised (seeded) Qwen2-style causal LM of this size, in bf16, and a
    byte-level BPE tokenizer trained on generated text into `folder` (the `save_pretrained`
    layout `strong.model` loads). The model's vocabulary is `vocab` whatever the tokenizer's size:
    the check feeds synthetic ids. Weights are initialised on `device` (fast on a GPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    from w2s.core.models.tiny import lm_config, train_tokenizer

    config = lm_config("qwen2", vocab, hidden, layers, heads, max_positions)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    train_tokenizer(generated_texts(), vocab_size=min(vocab, 1000)).save_pretrained(folder)
    params = sum(p.numel() for p in model.parameters())
    del model
    return {"folder": str(folder), "params": params, "hidden": hidden, "layers": layers, "heads": heads, "vocab": vocab}


def lm_flops_per_token(model: Any, seq: int) -> dict[str, Any]:
    """Model FLOPs per trained token of a (LoRA) classifier over a decoder (see the module's
    docstring): 4 N_frozen + 6 N_trainable + 12 L s h over matrix weights. Count before the
    model is sharded (ZeRO-3 empties the parameters it partitions)."""
    frozen = trainable = 0
    for name, p in model.named_parameters():
        if p.ndim != 2 or "embed" in name:  # norms and biases; the embedding is a lookup
            continue
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    config = model.encoder.config
    attention = 12 * config.num_hidden_layers * seq * config.hidden_size
    return {
        "frozen_matrix_params": frozen,
        "trainable_matrix_params": trainable,
        "flops_per_token": 4 * frozen + 6 * trainable + attention,
    }


def _cfg(args: argparse.Namespace, lm: bool, stage: str) -> Any:
    from w2s.config import load_config

    if lm:
        overrides = [
            f"strong.model={args.lm_dir}",
            f"strong.batch_size={args.lm_batch}",
            f"strong.max_length={args.lm_seq}",
            f"strong.lora.r={args.lora_r}",
            "strong.precision=bf16",
        ]
    else:
        overrides = [f"strong.model={args.model}", f"strong.batch_size={args.batch}", "strong.deepspeed.precision=bf16"]
    overrides += [f"strong.deepspeed.stage={stage}", f"strong.distributed.processes={args.gpus}"]
    return load_config(None, overrides).strong


def child(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from w2s.core.losses import xent
    from w2s.core.models.classifier import build_classifier, trainable_parameters

    mode = args.child
    lm = mode.startswith("lm-")
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"error: rank {os.environ.get('RANK', 0)} sees no CUDA device")
    stage = mode[-1] if mode != "torch" else "2"
    cfg = _cfg(args, lm, stage)
    _, model = build_classifier(cfg.model_copy(update={"num_layers": None}), 2, seed=0)
    batch, seq, steps = (args.lm_batch, args.lm_seq, args.lm_steps) if lm else (args.batch, args.seq, args.steps)
    flops = lm_flops_per_token(model, seq) if lm else None
    trainable, total_params = trainable_parameters(model)
    total = steps + args.warmup
    n = batch * total
    rng = np.random.default_rng(0)
    vocab = model.encoder.config.vocab_size
    ids = torch.as_tensor(rng.integers(1, vocab, size=(n, seq)) if lm else rng.integers(1000, 20000, size=(n, seq)))
    mask = torch.ones_like(ids)
    targets = torch.softmax(torch.as_tensor(rng.normal(size=(n, 2)), dtype=torch.float32), -1)
    runner: Any
    if mode == "torch":
        from w2s.core.train import TorchRunner

        runner = TorchRunner(model, cfg, total)
        rank, world = 0, 1
    else:
        import deepspeed
        import torch.distributed as dist

        from w2s.pipeline.distributed.dsconfig import generate
        from w2s.pipeline.distributed.runner import DeepSpeedRunner

        deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        runner = DeepSpeedRunner(model, cfg, total, generate(cfg, args.gpus), Path(tempfile.mkdtemp()))
        rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def loss_of(idx):
        logits = runner.model(ids[idx].to(device), mask[idx].to(device))
        return xent(logits, targets[idx].to(device), 0.0)

    batches = np.arange(n).reshape(total, batch)
    for b in batches[: args.warmup]:
        runner.step(b, loss_of)
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for b in batches[args.warmup :]:
        loss = runner.step(b, loss_of)
    sync()
    seconds = time.perf_counter() - start
    if rank != 0:
        return
    result: dict[str, Any] = {
        "mode": mode,
        "gpus": world,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "steps": steps,
        "global_batch": batch,
        "seq": seq,
        "examples_per_s": round(steps * batch / seconds, 1),
        "tokens_per_s": round(steps * batch * seq / seconds, 1),
        "peak_gpu_gib_rank0": round(torch.cuda.max_memory_allocated() / 1024**3, 3) if cuda else None,
        "precision": cfg.precision,
        "params": total_params,
        "trainable_params": trainable,
        "last_loss": round(loss, 4),
    }
    if flops is not None:
        peak = peak_tflops(result["device"], args.peak_tflops) if cuda else args.peak_tflops
        achieved = flops["flops_per_token"] * result["tokens_per_s"] / world / 1e12
        result.update(
            {
                **flops,
                "lora_r": cfg.lora.r,
                "tflops_per_gpu": round(achieved, 2),
                "peak_tflops": peak,
                "mfu": round(achieved / peak, 4) if peak else None,
            }
        )
    print("RESULT " + json.dumps(result), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="encoder,lm", help="comma-separated subset of: encoder, lm")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: a smoke run on gloo ranks")
    parser.add_argument(
        "--gpus", type=int, default=0, help="ranks for the DeepSpeed runs (0: all visible GPUs; 1 on CPU)"
    )
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before each measurement")
    enc = parser.add_argument_group("encoder section")
    enc.add_argument("--model", default="mpnet-base")
    enc.add_argument("--steps", type=int, default=300)
    enc.add_argument("--batch", type=int, default=32, help="global batch")
    enc.add_argument("--seq", type=int, default=128)
    lm = parser.add_argument_group("lm section")
    lm.add_argument("--lm-hidden", type=int, default=1024)
    lm.add_argument("--lm-layers", type=int, default=24)
    lm.add_argument("--lm-heads", type=int, default=16)
    lm.add_argument("--lm-vocab", type=int, default=32000)
    lm.add_argument("--lm-seq", type=int, default=512, help="tokens per example (at most 512)")
    lm.add_argument("--lm-batch", type=int, default=32, help="global batch")
    lm.add_argument("--lm-steps", type=int, default=100)
    lm.add_argument("--lora-r", type=int, default=16)
    lm.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s per GPU (overrides the table)")
    lm.add_argument("--tiny", action="store_true", help=f"a tiny decoder and run for a smoke test: {TINY}")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--lm-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or not sections:
        parser.error(f"unknown section(s) {unknown}; choose from {sorted(SECTIONS)}")
    args.sections = sections
    if args.tiny:
        for key, value in TINY.items():
            setattr(args, key, value)
    if not 8 <= args.lm_seq <= 512:
        parser.error("--lm-seq must be within 8..512 (strong.max_length)")
    return args


def _command(args: argparse.Namespace, mode: str, ranks: int) -> list[str]:
    flags = {
        "--device": args.device,
        "--gpus": args.gpus,
        "--warmup": args.warmup,
        "--model": args.model,
        "--steps": args.steps,
        "--batch": args.batch,
        "--seq": args.seq,
        "--lm-seq": args.lm_seq,
        "--lm-batch": args.lm_batch,
        "--lm-steps": args.lm_steps,
        "--lora-r": args.lora_r,
    }
    if args.peak_tflops:
        flags["--peak-tflops"] = args.peak_tflops
    if args.lm_dir:
        flags["--lm-dir"] = args.lm_dir
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), __file__, "--child", mode]
    for flag, value in flags.items():
        cmd += [flag, str(value)]
    return cmd


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'mode':9} {'gpus':>4} {'examples/s':>11} {'tokens/s':>10} {'peak GiB (rank 0)':>18} {'MFU':>6}  precision"
    ]
    for r in results:
        if "error" in r:
            lines.append(f"{r['mode']:9} failed: {r['error']}")
            continue
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
        lines.append(
            f"{r['mode']:9} {r['gpus']:>4} {r['examples_per_s']:>11} {r['tokens_per_s']:>10} "
            f"{r['peak_gpu_gib_rank0']!s:>18} {mfu:>6}  {r['precision']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    import torch

    if args.device == "cuda":
        if not torch.cuda.is_available():
            print(
                "error: no CUDA device visible; this check needs a GPU "
                "(`--device cpu --tiny` smoke-tests the code path)",
                file=sys.stderr,
            )
            return 2
        args.gpus = args.gpus or torch.cuda.device_count()
    else:
        args.gpus = args.gpus or 1
    for section in args.sections:
        batch = args.lm_batch if section == "lm" else args.batch
        if batch % args.gpus:
            print(f"error: the {section} global batch {batch} does not split over {args.gpus} ranks", file=sys.stderr)
            return 2
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    results: list[dict[str, Any]] = []
    report: dict[str, Any] = {"device": args.device, "gpus": args.gpus}
    with tempfile.TemporaryDirectory(prefix="w2s-gpu-check-") as tmp:
        if "lm" in args.sections:
            start = time.perf_counter()
            report["lm"] = build_lm(
                Path(tmp) / "lm",
                args.lm_hidden,
                args.lm_layers,
                args.lm_heads,
                args.lm_vocab,
                max_positions=max(512, args.lm_seq),
                device=args.device,
            )
            report["lm"]["build_seconds"] = round(time.perf_counter() - start, 1)
            args.lm_dir = report["lm"]["folder"]
            print(f"built the LM: {report['lm']}", flush=True)
            if args.device == "cuda":
                torch.cuda.empty_cache()
        for section in args.sections:
            for mode in SECTIONS[section]:
                ranks = 1 if mode == "torch" else args.gpus
                proc = subprocess.run(_command(args, mode, ranks), capture_output=True, text=True, env=env)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode != 0 or not lines:
                    print(f"{mode}: failed (exit {proc.returncode})\n{proc.stderr[-3000:]}", file=sys.stderr)
                    results.append({"mode": mode, "error": proc.stderr.strip().splitlines()[-1:]})
                    continue
                results.append(json.loads(lines[-1].removeprefix("RESULT ")))
                print(f"{mode}: {results[-1]}", flush=True)
    print(_table(results))
    report.update({"encoder": {"model": args.model, "seq": args.seq}, "results": results})
    print(json.dumps(report))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
