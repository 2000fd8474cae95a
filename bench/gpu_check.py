"""GPU check: throughput and memory of the strong model's training paths on this machine's GPUs,
the HF Trainer + peft beside the w2s trainer, and the whole flow on the device. One JSON report.

Four sections. The training modes each run in their own process group (torchrun), through the
backends the pipeline uses (`w2s.core.train.TorchBackend`, `w2s.pipeline.distributed.backend.
DeepSpeedBackend`), on synthetic token ids of a fixed length, so the numbers measure the step alone:

  encoder  fine-tune the strong encoder (default mpnet-base) with the plain torch backend and with
           DeepSpeed ZeRO-2 and ZeRO-3 (bf16): examples/s, peak memory.
  lm       a randomly initialised Qwen2-style decoder (default hidden 1024, 24 layers, 16 heads,
           vocabulary 32,000: ~310M weights), built here from a config (no hub, no download; its
           tokenizer is trained on generated text), trained as a classifier in bf16, with LoRA
           (r=16) and as a full fine-tune, each on the torch backend, ZeRO-2 and ZeRO-3 (modes
           lm-{lora,full}-{torch,zero2,zero3}): tokens/s, model FLOP utilisation (MFU) against the
           GPU's peak dense bf16 FLOP/s, peak memory beside what `w2s plan` predicts for it.
  hf       bench/lm_training.py's contest on the device: the w2s trainer against the HF Trainer
           + peft on the same decoder size (tokenizer trained on the bundled tweets), the same
           LoRA (r=8), batch, tweets and schedule, bf16: real tokens/s of both and their ratio.
  flow     bench/gpu_flow.py: `w2s run` on the demo config with a tiny LM student (LoRA r=8,
           bf16) on the torch backend, then on DeepSpeed, each registered; then a fresh process
           that sees no GPU predicts the test split with both registered versions.

    bash bench/gpu_check.sh                                  # every section, every visible GPU
    bash bench/gpu_check.sh --sections lm,hf,flow --lm-steps 30 --report out/gpu_check.json
    bash bench/gpu_check.sh --sections lm --lm-hidden 2048 --lm-modes lora-torch,lora-zero2   # 1.2B
    bash bench/gpu_check.sh --device cpu --tiny              # every mode and section on a CPU, minutes

The hf and flow sections read data/election-tweets-2016.tab (`w2s data fetch`; `--data-dir`).
Results, the versions of the libraries, the device, the date and the speed and memory targets set
for one GPU (`TARGETS`: met or not, judged on a GPU only) go to one JSON report (`--report`,
default .w2s/bench/gpu_check.json; rewritten after every mode and section) and a table.

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
BACKENDS = ("torch", "zero2", "zero3")
ENCODER_MODES = BACKENDS
LM_MODES = tuple(f"lm-{kind}-{backend}" for kind in ("lora", "full") for backend in BACKENDS)
MODES = ENCODER_MODES + LM_MODES
SECTIONS: dict[str, tuple[str, ...]] = {"encoder": ENCODER_MODES, "lm": LM_MODES, "hf": (), "flow": ()}
DEFAULT_REPORT = REPO / ".w2s" / "bench" / "gpu_check.json"

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

# The `--tiny` sizes: seconds on a CPU, for checking the code paths, not for figures.
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
    "model": "minilm-l6",
    "steps": 2,
    "batch": 4,
    "seq": 16,
    "hf_examples": 32,
    "hf_seq": 32,
    "hf_repeats": 1,
}
# The targets set for one GPU (bf16, seq 512, global batch 32; MFU by the formula above).
TARGETS = {
    "mfu_full_torch": 0.40,
    "mfu_lora_310m": 0.25,
    "mfu_lora_1b": 0.35,
    "zero2_vs_torch": 0.9,
    "zero3_vs_torch": 0.6,
    "lora_zero3_s_per_100_steps": 60.0,
    "w2s_vs_hf_trainer": 1.2,
    "plan_error": 0.25,
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


def _cfg(args: argparse.Namespace, lm: bool, stage: str, lora: bool = True) -> Any:
    from w2s.config import load_config

    if lm:
        overrides = [
            f"strong.model={args.lm_dir}",
            f"strong.batch_size={args.lm_batch}",
            f"strong.max_length={args.lm_seq}",
            f"strong.lora.r={args.lora_r if lora else 0}",
            "strong.precision=bf16",
        ]
    else:
        overrides = [f"strong.model={args.model}", f"strong.batch_size={args.batch}", "strong.deepspeed.precision=bf16"]
    overrides += [f"strong.deepspeed.stage={stage}", f"strong.distributed.processes={args.gpus}"]
    return load_config(None, overrides).strong


def child(args: argparse.Namespace) -> None:
    """One mode, in the ranks torchrun started: train on synthetic ids, print rank 0's RESULT line."""
    import numpy as np
    import torch

    from w2s.core.losses import xent
    from w2s.core.models.classifier import build_classifier, trainable_parameters

    mode = args.child
    lm = mode.startswith("lm-")
    backend = mode.rsplit("-", 1)[-1]  # torch, zero2 or zero3
    lora = lm and "-lora-" in mode
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"error: rank {os.environ.get('RANK', 0)} sees no CUDA device")
    cfg = _cfg(args, lm, backend[-1] if backend != "torch" else "2", lora)
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
    trainer, rank, world = _trainer(backend, model, cfg, total, args.gpus, cuda)
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")

    def loss_of(idx):
        logits = trainer.model(ids[idx].to(device), mask[idx].to(device))
        return xent(logits, targets[idx].to(device), 0.0)

    seconds, loss = _timed(trainer, loss_of, np.arange(n).reshape(total, batch), args.warmup, cuda)
    if rank != 0:
        return
    peak = torch.cuda.max_memory_allocated() / 1024**3 if cuda else None
    result: dict[str, Any] = {
        "mode": mode,
        "backend": backend,
        "gpus": world,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "steps": steps,
        "global_batch": batch,
        "seq": seq,
        "seconds": round(seconds, 2),
        "seconds_per_100_steps": round(100 * seconds / steps, 1),
        "examples_per_s": round(steps * batch / seconds, 1),
        "tokens_per_s": round(steps * batch * seq / seconds, 1),
        "peak_gpu_gib_rank0": round(peak, 3) if peak is not None else None,
        "peak_reserved_gib_rank0": round(torch.cuda.max_memory_reserved() / 1024**3, 3) if cuda else None,
        "precision": cfg.precision,
        "params": total_params,
        "trainable_params": trainable,
        "last_loss": round(float(loss), 4),
    }
    if lm:  # what `w2s plan` says this configuration needs, beside what it took
        result.update(_planned(cfg, backend, lora, world, seq, peak))
    if flops is not None:
        result.update(_mfu(flops, result, args, cuda, cfg.lora.r if lora else 0))
    print("RESULT " + json.dumps(result), flush=True)


def _trainer(backend: str, model: Any, cfg: Any, total: int, gpus: int, cuda: bool) -> tuple[Any, int, int]:
    """The pipeline's backend for `backend` (torch, zero2, zero3), with this process's rank and world."""
    import torch

    if backend == "torch":
        from w2s.core.train import TorchBackend

        return TorchBackend(model, cfg, total), 0, 1
    import deepspeed
    import torch.distributed as dist

    from w2s.pipeline.distributed.backend import DeepSpeedBackend
    from w2s.pipeline.distributed.dsconfig import generate

    if cuda:  # before the process group, as the pipeline's worker does
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")
    trainer = DeepSpeedBackend(model, cfg, total, generate(cfg, gpus), Path(tempfile.mkdtemp()))
    return trainer, dist.get_rank(), dist.get_world_size()


def _timed(trainer: Any, loss_of: Any, batches: Any, warmup: int, cuda: bool) -> tuple[float, Any]:
    """Seconds for the steps after the warm-up ones (the device drained at both ends), and the
    last loss; the peak memory counts from the timed steps on."""
    import torch

    for b in batches[:warmup]:
        trainer.step(b, loss_of)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    loss = None
    for b in batches[warmup:]:
        loss = trainer.step(b, loss_of)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, loss


def _planned(cfg: Any, backend: str, lora: bool, world: int, seq: int, peak: float | None) -> dict[str, Any]:
    """`w2s plan`'s figure for the mode and its error against the measured peak."""
    try:
        planned = plan_gib(cfg, backend, lora, world, seq)
    except Exception as exc:  # the measurement stands without it
        return {"plan_gib": None, "plan_failed": f"{type(exc).__name__}: {exc}"[:300], "plan_error": None}
    return {"plan_gib": planned, "plan_error": round(planned / peak - 1, 3) if peak and planned else None}


def _mfu(flops: dict[str, Any], result: dict[str, Any], args: argparse.Namespace, cuda: bool, r: int) -> dict[str, Any]:
    """Achieved TFLOP/s per GPU and the model FLOP utilisation against the device's peak."""
    peak = peak_tflops(result["device"], args.peak_tflops) if cuda else args.peak_tflops
    achieved = flops["flops_per_token"] * result["tokens_per_s"] / result["gpus"] / 1e12
    return {
        **flops,
        "lora_r": r,
        "tflops_per_gpu": round(achieved, 2),
        "peak_tflops": peak,
        "mfu": round(achieved / peak, 4) if peak else None,
    }


def plan_gib(cfg: Any, backend: str, lora: bool, gpus: int, seq: int) -> float:
    """`w2s plan`'s GiB per GPU (model states and activations) for this mode's configuration."""
    from w2s.core.plan import plan

    out = plan(cfg, 1 if backend == "torch" else gpus, 1, seq_len=seq)
    stage = "torch" if backend == "torch" else int(backend[-1])
    rows = out["lora_rows"] if lora else out["rows"]
    return next(r["gpu_with_activations_gib"] for r in rows if r["stage"] == stage and r["offload"] == "none")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sections", default="encoder,lm,hf,flow", help="comma-separated subset of: encoder, lm, hf, flow"
    )
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="where the JSON report goes")
    parser.add_argument(
        "--data-dir", type=Path, default=REPO / "data", help="folder holding election-tweets-2016.tab (hf, flow)"
    )
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
    lm.add_argument(
        "--lm-modes",
        default=",".join(m.removeprefix("lm-") for m in LM_MODES),
        help="comma-separated {lora,full}-{torch,zero2,zero3} (default: all six)",
    )
    lm.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOP/s per GPU (overrides the table)")
    lm.add_argument("--tiny", action="store_true", help=f"tiny sizes for a CPU smoke test: {TINY}")
    hf = parser.add_argument_group("hf section (the decoder's size and batch are the lm section's)")
    hf.add_argument("--hf-examples", type=int, default=2048, help="tweets per epoch")
    hf.add_argument("--hf-seq", type=int, default=128, help="max tokens per tweet")
    hf.add_argument("--hf-repeats", type=int, default=3, help="interleaved epochs per contender (median)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--lm-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or not sections:
        parser.error(f"unknown section(s) {unknown}; choose from {sorted(SECTIONS)}")
    args.sections = sections
    args.lm_modes = [f"lm-{m}" for m in args.lm_modes.split(",") if m]
    if not args.lm_modes or set(args.lm_modes) - set(LM_MODES):
        parser.error(f"--lm-modes: choose from {','.join(m.removeprefix('lm-') for m in LM_MODES)}")
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
    head = f"{'mode':14} {'gpus':>4} {'examples/s':>11} {'tokens/s':>10} {'peak GiB':>9} {'plan GiB':>9} {'MFU':>6}"
    lines = [head + "  precision"]
    for r in results:
        if "error" in r:
            lines.append(f"{r['mode']:14} failed: {r['error']}")
            continue
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
        lines.append(
            f"{r['mode']:14} {r['gpus']:>4} {r['examples_per_s']:>11} {r['tokens_per_s']:>10} "
            f"{r['peak_gpu_gib_rank0']!s:>9} {r.get('plan_gib', '-')!s:>9} {mfu:>6}  {r['precision']}"
        )
    return "\n".join(lines)


def versions() -> dict[str, Any]:
    """The Python and library versions behind the figures."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    out: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    for name in ("transformers", "peft", "deepspeed", "accelerate"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _run_mode(args: argparse.Namespace, mode: str, env: dict[str, str]) -> dict[str, Any]:
    ranks = 1 if mode.endswith("torch") else args.gpus
    proc = subprocess.run(_command(args, mode, ranks), capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(f"{mode}: failed (exit {proc.returncode})\n{proc.stderr[-3000:]}", file=sys.stderr)
        return {"mode": mode, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:500]}
    result = json.loads(lines[-1].removeprefix("RESULT "))
    print(f"{mode}: {result}", flush=True)
    return result


def hf_section(args: argparse.Namespace) -> dict[str, Any]:
    """bench/lm_training.py's w2s trainer vs HF Trainer + peft, on this device, in bf16."""
    from bench.lm_training import measure

    if args.device == "cuda":  # the CUDA context and cuBLAS start before either contender's time
        import torch

        x = torch.randn(1024, 1024, device="cuda", dtype=torch.bfloat16)
        (x @ x).sum().item()
    lm = {"hidden": args.lm_hidden, "layers": args.lm_layers, "heads": args.lm_heads, "max_positions": 512}
    out = measure(
        n=args.hf_examples,
        bs=args.lm_batch,
        max_len=args.hf_seq,
        repeats=args.hf_repeats,
        contenders=["w2s trainer", "HF Trainer + peft"],
        lm=lm,
        data_dir=args.data_dir,
        device=args.device,
        precision="bf16",
    )
    c = out["contenders"]
    out["ratio"] = round(c["w2s trainer"]["tokens_per_s"] / c["HF Trainer + peft"]["tokens_per_s"], 3)
    return out


def targets(report: dict[str, Any], hidden: int) -> list[dict[str, Any]]:
    """The targets against this report: value, goal, met (None: not measured, or not on a GPU)."""
    by_mode = {r["mode"]: r for r in report.get("results", []) if "error" not in r}
    out: list[dict[str, Any]] = []

    gpu = report.get("device") != "cpu"  # a CPU smoke run judges no target

    def add(name: str, value: float | None, target: float, higher: bool = True) -> None:
        met = None if value is None or not gpu else (value >= target if higher else value <= target)
        out.append({"target": name, "value": value, "goal": (">= " if higher else "<= ") + str(target), "met": met})

    def mfu(mode: str) -> float | None:
        return by_mode.get(mode, {}).get("mfu")

    def ratio(mode: str, over: str) -> float | None:
        a, b = by_mode.get(mode), by_mode.get(over)
        return round(a["tokens_per_s"] / b["tokens_per_s"], 3) if a and b else None

    add("MFU, full fine-tune, torch backend", mfu("lm-full-torch"), TARGETS["mfu_full_torch"])
    lora_goal = TARGETS["mfu_lora_1b"] if hidden >= 2048 else TARGETS["mfu_lora_310m"]
    for backend in BACKENDS:
        add(f"MFU, LoRA, {backend}", mfu(f"lm-lora-{backend}"), lora_goal)
    for kind in ("full", "lora"):
        for stage in ("zero2", "zero3"):
            value = ratio(f"lm-{kind}-{stage}", f"lm-{kind}-torch")
            add(f"{kind}: ZeRO-{stage[-1]} / torch tokens/s", value, TARGETS[f"{stage}_vs_torch"])
    zero3 = by_mode.get("lm-lora-zero3", {}).get("seconds_per_100_steps")
    add("LoRA ZeRO-3: seconds per 100 steps", zero3, TARGETS["lora_zero3_s_per_100_steps"], higher=False)
    hf = report.get("hf", {})
    add("w2s / HF Trainer + peft tokens/s", hf.get("ratio"), TARGETS["w2s_vs_hf_trainer"])
    for mode, r in by_mode.items():
        if r.get("plan_error") is not None:
            add(f"|w2s plan / peak - 1|, {mode}", abs(r["plan_error"]), TARGETS["plan_error"], higher=False)
    if "flow" in report:
        out.append({"target": "flow: trains, registers, predicts on a CPU", "met": report["flow"].get("ok", False)})
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    problem = _check_devices(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    import torch

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    started = time.time()
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "gpus": args.gpus,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "versions": versions(),
        "args": {k: str(v) for k, v in vars(args).items() if k not in ("child", "lm_dir")},
        "results": [],
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every mode and section: a run stopped at its time limit keeps what it did
        report["targets"] = targets(report, args.lm_hidden)
        report["seconds"] = round(time.time() - started, 1)
        args.report.write_text(json.dumps(report, indent=2, default=str))

    with tempfile.TemporaryDirectory(prefix="w2s-gpu-check-") as tmp:
        if "lm" in args.sections:
            report["lm"] = _build(args, Path(tmp))
        for section in args.sections:
            for mode in (m for m in SECTIONS[section] if section != "lm" or m in args.lm_modes):
                report["results"].append(_run_mode(args, mode, env))
                save()
    if "encoder" in args.sections:
        report["encoder"] = {"model": args.model, "seq": args.seq}
    for section, run in (("hf", hf_section), ("flow", _flow)):
        if section in args.sections:
            start = time.perf_counter()
            try:
                report[section] = run(args)
            except Exception as exc:  # one section's failure is reported; the others still run
                report[section] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            report[section]["seconds"] = round(time.perf_counter() - start, 1)
            print(f"{section}: {json.dumps(report[section], default=str)[:2000]}", flush=True)
            save()
    save()
    print(_table(report["results"]))
    for t in report["targets"]:
        print(f"  {t['target']}: {t.get('value')} (goal {t.get('goal', 'ok')}) met={t['met']}")
    print(f"report: {args.report}")
    failed = [r for r in report["results"] if "error" in r] + [
        report[s] for s in ("hf", "flow") if s in report and ("error" in report[s] or report[s].get("ok") is False)
    ]
    return 1 if failed else 0


def _check_devices(args: argparse.Namespace) -> str | None:
    """Fill in the rank count; what is wrong with the devices or the batch sizes, if anything."""
    import torch

    if args.device == "cuda":
        if not torch.cuda.is_available():
            return "no CUDA device visible; this check needs a GPU (`--device cpu --tiny` smoke-tests the code path)"
        args.gpus = args.gpus or torch.cuda.device_count()
    else:
        args.gpus = args.gpus or 1
    for section in ("encoder", "lm"):
        batch = args.lm_batch if section == "lm" else args.batch
        if section in args.sections and batch % args.gpus:
            return f"the {section} global batch {batch} does not split over {args.gpus} ranks"
    return None


def _build(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Build the decoder every LM mode trains (weights initialised on the device)."""
    import torch

    start = time.perf_counter()
    built = build_lm(
        folder / "lm",
        args.lm_hidden,
        args.lm_layers,
        args.lm_heads,
        args.lm_vocab,
        max_positions=max(512, args.lm_seq),
        device=args.device,
    )
    built["build_seconds"] = round(time.perf_counter() - start, 1)
    args.lm_dir = built["folder"]
    print(f"built the LM: {built}", flush=True)
    if args.device == "cuda":
        torch.cuda.empty_cache()
    return built


def _flow(args: argparse.Namespace) -> dict[str, Any]:
    from bench.gpu_flow import DATA_FILE, run_flow

    return run_flow(args.data_dir / DATA_FILE, args.tiny)


if __name__ == "__main__":
    sys.exit(main())
