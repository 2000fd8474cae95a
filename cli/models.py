"""Verbs about the models themselves: `plan` (GPU memory of the strong model's training under
each ZeRO stage, before renting hardware) and `tiny-lms` (a size series of small causal LMs built
offline, for a PGR-vs-size sweep without a hub)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from w2s.cli.common import config_args
from w2s.errors import W2SError

EXAMPLES = {
    "tiny-lms": "w2s tiny-lms models/lm --family qwen2 --sizes 32x1,64x2,128x2,128x4,256x4 --pretrain-steps 300",
    "plan": "w2s plan --gpus 8\n  w2s plan --set strong.model=mpnet-base --gpus 4 --nodes 2",
}


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the estimated training memory of the configured strong model per ZeRO stage, full and LoRA."""
    from rich.console import Console
    from rich.table import Table

    from w2s.config import load_config
    from w2s.core.plan import plan
    from w2s.project import Project

    project = Project.discover()
    config_path = args.config or (project.params_file if project.params_file.is_file() else None)
    cfg = load_config(config_path, args.set)
    from w2s.core.models.resolve import check_model

    check_model(cfg.strong.model)
    gpus = cfg.strong.distributed.processes if args.gpus is None else args.gpus
    num_labels = len(cfg.data.labels) if cfg.data.labels else 2
    with contextlib.redirect_stdout(sys.stderr):  # DeepSpeed logs to stdout; keep it for results
        result = plan(cfg.strong, gpus, args.nodes, seq_len=args.seq_len, num_labels=num_labels)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    act = result["activations"]
    lora = result["lora"]
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, 120)  # a pipe or file has no width to fit: keep rows whole
    table = Table(
        title=f"{cfg.strong.model} ({result['model_type']}, {result['precision']}): "
        f"{result['params'] / 1e6:,.1f}M parameters (base, no LM head; {result['published_params'] / 1e6:,.1f}M "
        f"published), largest layer {result['largest_layer_params'] / 1e6:,.1f}M, "
        f"{gpus} GPU(s) x {args.nodes} node(s); full fine-tuning",
        title_justify="left",
    )
    columns = ("ZeRO stage", "offload", "per GPU (GiB)", "+ activations (GiB)", "CPU per node (GiB)", "source")
    for col in columns:
        table.add_column(col, justify="right" if "GiB" in col else "left")
    for r in result["rows"]:
        table.add_row(
            str(r["stage"]),
            r["offload"],
            f"{r['gpu_gib']:.2f}",
            f"{r['gpu_with_activations_gib']:.2f}",
            f"{r['cpu_gib']:.2f}",
            r["source"],
        )
    console.print(table)
    if lora:
        note = "" if lora["configured"] else ", a comparison (strong.lora.r=0 trains every weight)"
        lora_table = Table(
            title=f"LoRA r={lora['r']} on {', '.join(lora['target_modules'])}: "
            f"{lora['trainable_params'] / 1e6:,.2f}M trainable (adapters and head), frozen base in "
            f"{result['precision']}{note}",
            title_justify="left",
        )
        for col in ("ZeRO stage", *columns[2:5]):
            lora_table.add_column(col, justify="right" if "GiB" in col else "left")
        for r in result["lora_rows"]:
            lora_table.add_row(
                str(r["stage"]), f"{r['gpu_gib']:.2f}", f"{r['gpu_with_activations_gib']:.2f}", f"{r['cpu_gib']:.2f}"
            )
        console.print(lora_table)
    else:
        print(f"no LoRA rows: lora.target_modules=auto does not know model type '{result['model_type']}'.")
    ckpt = "on" if act["gradient_checkpointing"] else "off"
    print(
        f"activations per GPU at micro batch {act['micro_batch']} x {act['seq_len']} tokens: "
        f"{act['without_checkpointing_gib']:.2f} GiB without gradient checkpointing, "
        f"{act['with_checkpointing_gib']:.2f} GiB with; '+ activations' adds the configured one "
        f"(strong.gradient_checkpointing: {ckpt})."
    )
    return 0


def cmd_tiny_lms(args: argparse.Namespace) -> int:
    """Build a size series of tiny causal LMs sharing one tokenizer, pretrained on the configured data's texts."""
    from pathlib import Path

    from w2s.config import load_config
    from w2s.core.data.sources import canonicalise, read_source
    from w2s.core.models.tiny import build_series, parse_size
    from w2s.project import Project

    sizes = [s for s in args.sizes.split(",") if s.strip()]
    if not sizes:
        raise W2SError("--sizes names no size (e.g. 32x1,64x2,128x4)")
    for size in sizes:
        parse_size(size)  # a malformed size is a one-line error before any data is read
    if args.pretrain_steps < 0 or args.vocab_size < 64:
        raise W2SError("--pretrain-steps must be >= 0 and --vocab-size >= 64")
    project = Project.discover()
    config_path = args.config or (project.params_file if project.params_file.is_file() else None)
    cfg = load_config(config_path, args.set)
    raw, _ = read_source(cfg.data, project)
    table, _ = canonicalise(raw, cfg.data)
    texts = [str(t) for t in table["text"]]
    root = Path(args.folder)
    info = sys.stderr if args.json else sys.stdout
    print(
        f"tiny-lms: {len(sizes)} {args.family} models in {root}, tokenizer and {args.pretrain_steps} pretraining "
        f"steps on all {len(texts)} texts of the configured data (every split: unsupervised, no labels)",
        file=info,
    )
    built: list[dict[str, Any]] = []

    def progress(r: dict[str, Any]) -> None:
        built.append(r)
        print(
            f"  {r['folder']}  hidden {r['hidden']}, {r['layers']} layers, {r['heads']} heads, "
            f"{r['params'] / 1e6:.2f}M parameters",
            file=info,
        )

    build_series(
        root,
        texts,
        sizes,
        family=args.family,
        vocab_size=args.vocab_size,
        pretrain_steps=args.pretrain_steps,
        seed=args.seed,
        progress=progress,
    )
    if args.json:
        print(json.dumps(built, indent=2, default=str))
    return 0


def add_plan(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `plan` verb."""
    plan = sub.add_parser(
        "plan",
        formatter_class=fmt,
        help="estimate GPU memory per ZeRO stage for the strong model",
        description="For the configured strong model and GPU count, print the memory its training "
        "states need per GPU and per node under each ZeRO stage and offload option "
        "(DeepSpeed's estimators for stages 2 and 3), fully fine-tuned and with LoRA adapters, "
        "at strong.precision, plus the activations of one micro batch with and without gradient "
        "checkpointing, so a stage can be picked before renting hardware. Only the model's "
        "config.json is read; no weights are loaded.",
        epilog="examples:\n  "
        + EXAMPLES["plan"]
        + "\n  w2s plan --set strong.model=Qwen/Qwen2.5-7B --set strong.lora.r=16 --set strong.precision=bf16 "
        "--set strong.gradient_checkpointing=true --gpus 8 --seq-len 512",
    )
    config_args(plan)
    plan.add_argument("--gpus", type=int, default=None, help="GPUs per node (default: strong.distributed.processes)")
    plan.add_argument("--nodes", type=int, default=1, help="nodes (default 1)")
    plan.add_argument(
        "--seq-len", type=int, default=None, help="tokens per example for activations (default: strong.max_length)"
    )
    plan.add_argument("--json", action="store_true", help="print the estimates as JSON")
    plan.set_defaults(func=cmd_plan)


def add_tiny_lms(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `tiny-lms` verb."""
    tiny = sub.add_parser(
        "tiny-lms",
        formatter_class=fmt,
        help="build a size series of tiny causal LMs (offline) for a PGR-vs-size sweep",
        description="Train one byte-level BPE tokenizer on the texts of the configured data source "
        "(data.* of params.yaml or --config/--set), then write one causal LM per size into "
        "FOLDER/<family>-h<hidden>-l<layers>/ (save_pretrained layout, loadable as strong.model or "
        "weak.encoder.model), each pretrained with the same seed for --pretrain-steps next-token "
        "steps on those texts, so a bigger model is also a better one. The pretraining is "
        "unsupervised and reads every row's text (test rows included, never a label). Sizes are "
        "HIDDENxLAYERS or HIDDENxLAYERSxHEADS (default heads: hidden/32, at least 2).",
        epilog="example:\n  " + EXAMPLES["tiny-lms"] + "\n  w2s sweep --config configs/sweep-lm-sizes.yaml",
    )
    tiny.add_argument("folder", metavar="FOLDER", help="where the series goes, e.g. models/lm")
    tiny.add_argument(
        "--family", default="qwen2", choices=("gpt2", "gpt_neox", "llama", "qwen2"), help="architecture (default qwen2)"
    )
    tiny.add_argument(
        "--sizes",
        default="32x1,64x2,128x2,128x4,256x4",
        help="comma-separated HIDDENxLAYERS[xHEADS] (default %(default)s)",
    )
    tiny.add_argument("--pretrain-steps", type=int, default=300, help="next-token steps per model (default 300)")
    tiny.add_argument("--vocab-size", type=int, default=2000, help="BPE vocabulary size (default 2000)")
    tiny.add_argument("--seed", type=int, default=0, help="initialisation and pretraining seed (default 0)")
    config_args(tiny)
    tiny.add_argument("--json", action="store_true", help="print the built models as JSON")
    tiny.set_defaults(func=cmd_tiny_lms)


PARSERS = (add_plan, add_tiny_lms)
