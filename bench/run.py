"""`make bench`: every performance figure of the project in one run, as a JSON report and a table.

    python -m bench.run [--quick] [--out .w2s/bench/report.json] [--only training,lm_training,...] [--threads N]

Ratios are taken between measurements of the same run, since absolute times on a shared machine
drift; each figure records its repeats, and the reported value is their median.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import REPO, bench_env

SECTIONS = ("machine", "ingest", "predict", "training", "lm_training", "inference", "pipeline")


def collect(sections: list[str], quick: bool, scratch: Path) -> dict[str, Any]:
    """Run the chosen sections; each records its own wall time."""
    from bench import inference, ingest, lm_training, machine, pipeline, predict, training

    runs: dict[str, Callable[[], Any]] = {
        "machine": lambda: {**machine.describe(), "matmul": machine.matmul_flops(repeats=3 if quick else 5)},
        "ingest": lambda: ingest.measure(scratch, quick),
        "predict": lambda: predict.measure(scratch, quick),
        "training": lambda: training.measure(n=128 if quick else 1024, repeats=1 if quick else 3),
        "lm_training": lambda: lm_training.measure(n=128 if quick else 1024, repeats=1 if quick else 3),
        "inference": lambda: inference.measure(n=256 if quick else 2000, repeats=1 if quick else 3),
        "pipeline": lambda: pipeline.measure(scratch, quick),
    }
    import torch

    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "torch_threads": torch.get_num_threads(),
    }
    for name in sections:
        start = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        report[name] = runs[name]()
        report.setdefault("section_seconds", {})[name] = round(time.perf_counter() - start, 1)
    return report


def ratios(report: dict[str, Any]) -> list[tuple[str, float | None, str, bool | None]]:
    """(figure, value, target, met) for every ratio the report can compute."""
    rows: list[tuple[str, float, str]] = []
    if "training" in report:
        c = report["training"]["contenders"]
        ours = c["w2s trainer"]["examples_per_s"]
        rows.append(
            ("training: w2s / plain PyTorch (examples/s)", ours / c["plain PyTorch loop"]["examples_per_s"], ">= 1.0")
        )
        rows.append(("training: w2s / HF Trainer (examples/s)", ours / c["HF Trainer"]["examples_per_s"], ">= 1.2"))
        rows.append(
            (
                "training: w2s / HF Trainer group_by_length",
                ours / c["HF Trainer (group_by_length)"]["examples_per_s"],
                "(info)",
            )
        )
    if "lm_training" in report:
        c = report["lm_training"]["contenders"]
        ours = c["w2s trainer"]["tokens_per_s"]
        rows.append(
            ("LM training: w2s / HF Trainer + peft (tokens/s)", ours / c["HF Trainer + peft"]["tokens_per_s"], ">= 1.2")
        )
        rows.append(
            (
                "LM training: w2s / HF Trainer + peft group_by_length",
                ours / c["HF Trainer + peft (group_by_length)"]["tokens_per_s"],
                "(info)",
            )
        )
        rows.append(("LM training: w2s bf16 / fp32 (tokens/s)", c["w2s trainer bf16"]["tokens_per_s"] / ours, "(info)"))
    if "inference" in report:
        inf = report["inference"]
        fast = inf["length_sorted"]["texts_per_s"]
        rows.append(("embedding: length-sorted / input order", fast / inf["input_order"]["texts_per_s"], ">= 1.5"))
        rows.append(
            (
                "embedding: length-sorted / padded to max_length",
                fast / inf["input_order_max_length"]["texts_per_s"],
                "(info)",
            )
        )
    if "training" in report and "machine" in report:
        rows.append(
            (
                "training FLOP/s / matmul FLOP/s",
                report["training"]["w2s_gflops"] / report["machine"]["matmul"]["gflops"],
                "(info)",
            )
        )
    if "ingest" in report:
        rows.extend(ingest_ratios(report["ingest"]))
    if "predict" in report:
        from bench.predict import ratios as predict_ratios

        rows.extend(predict_ratios(report["predict"]))
    if "pipeline" in report:
        p = report["pipeline"]
        rows.append(("orchestrated / library wall time", p["overhead"]["ratio"], "<= 1.15"))
        rows.append(("cached re-run / first run", p["overhead"]["cached_rerun_ratio"], "<= 0.2"))
        rows.append(
            (
                f"sweep of {len(p['shared_sweep']['methods'])} methods / independent runs",
                p["shared_sweep"]["ratio"],
                "< 1",
            )
        )
    return [(name, value, target, _met(value, target)) for name, value, target in rows]


def ingest_ratios(ing: dict[str, Any]) -> list[tuple[str, float, str]]:
    """Peak RSS of the largest CSV against the 2 GB bound, its growth against the file's, and the
    streamed path against the whole-table baseline on the largest size the baseline ran."""
    streamed, whole = ing["streamed"], ing["in-memory"]
    small, mid, big = (f"{mb}MB" for mb in ing["sizes_mb"])
    rows = [
        (f"ingest: peak RSS on the {big} CSV (MB)", streamed[big]["peak_rss_mb"], "< 2048"),
        (
            f"ingest: peak RSS {big} / {mid} (file ratio {streamed[big]['file_mb'] / streamed[mid]['file_mb']:.0f})",
            streamed[big]["peak_rss_mb"] / streamed[mid]["peak_rss_mb"],
            f"< {streamed[big]['file_mb'] / streamed[mid]['file_mb']:.1f}",
        ),
        (
            f"ingest: streamed / in-memory peak RSS ({mid})",
            streamed[mid]["peak_rss_mb"] / whole[mid]["peak_rss_mb"],
            "< 1",
        ),
        (
            f"ingest: streamed / in-memory rows/s ({mid})",
            streamed[mid]["rows_per_s"] / whole[mid]["rows_per_s"],
            "(info)",
        ),
    ]
    return rows


def _met(value: float | None, target: str) -> bool | None:
    if value is None or not target.startswith(("<", ">")):
        return None
    op, bound = target.split()
    bound_f = float(bound)
    return {"<=": value <= bound_f, ">=": value >= bound_f, "<": value < bound_f, ">": value > bound_f}[op]


def table(report: dict[str, Any]) -> str:
    """The human-readable summary printed at the end."""
    lines = ["| figure | value | target | met |", "|---|---|---|---|"]
    for name, value, target, met in report["ratios"]:
        mark = "" if met is None else ("yes" if met else "NO")
        lines.append(f"| {name} | {value:.2f} | {target} | {mark} |")
    if "machine" in report:
        m = report["machine"]
        lines.append(
            f"\nmachine: {m['cpu']}, {m['cores_usable']} cores, {m['memory_gb']} GB, torch {m['torch']}; "
            f"matmul {m['matmul']['gflops']:.0f} GFLOP/s (fp32, n={m['matmul']['n']})"
        )
    for section, what in (("ingest", "ingest + raw gate + splits"), ("predict", "batch inference")):
        for mode, runs in report.get(section, {}).items():
            if mode == "sizes_mb":
                continue
            figures = "; ".join(
                f"{k} ({r['rows']} rows): {r['peak_rss_mb']:.0f} MB peak RSS, {r['rows_per_s']} rows/s"
                for k, r in runs.items()
            )
            lines.append(f"{what}, {mode}: {figures}")
    if "training" in report:
        t = report["training"]
        speeds = ", ".join(f"{k} {v['examples_per_s']:.1f}" for k, v in t["contenders"].items())
        lines.append(
            f"training examples/s ({t['examples']} tweets, batch {t['batch_size']}, median of "
            f"{t['repeats']}): {speeds}; w2s trainer {t['w2s_gflops']:.1f} GFLOP/s"
        )
    if "lm_training" in report:
        t = report["lm_training"]
        c = t["contenders"]
        speeds = ", ".join(f"{k} {v['tokens_per_s']:.0f} ({v['pad_fraction']:.0%} padding)" for k, v in c.items())
        m = t["model"]
        lines.append(
            f"LM training real tokens/s ({t['examples']} tweets, {t['real_tokens']} tokens, batch {t['batch_size']}, "
            f"Qwen2-style {m['hidden']}x{m['layers']}, {m['parameters'] / 1e6:.1f}M weights, LoRA r={t['lora']['r']}, "
            f"median of {t['repeats']}, {t['torch_threads']} torch threads): {speeds}; w2s training loss (epoch "
            f"mean / last quarter) fp32 {c['w2s trainer']['mean_loss']:.4f} / {c['w2s trainer']['final_loss']:.4f}, "
            f"bf16 {c['w2s trainer bf16']['mean_loss']:.4f} / {c['w2s trainer bf16']['final_loss']:.4f}"
        )
    if "inference" in report:
        i = report["inference"]
        lines.append(
            f"embedding texts/s ({i['texts']} tweets): length-sorted {i['length_sorted']['texts_per_s']:.0f}, "
            f"input order {i['input_order']['texts_per_s']:.0f}, padded to max_length "
            f"{i['input_order_max_length']['texts_per_s']:.0f}"
        )
    if "pipeline" in report:
        o, s = report["pipeline"]["overhead"], report["pipeline"]["scaling"]
        lines.append(
            f"demo (transfer {o['transfer']}): orchestrated {o['flow_seconds']:.0f} s, library "
            f"{o['library_seconds']:.0f} s, metrics identical: {o['metrics_identical']}; cached re-run "
            f"{min(o['cached_rerun_seconds']):.0f}-{max(o['cached_rerun_seconds']):.0f} s; peak RSS "
            f"{o['flow_peak_rss_mb']:.0f} MB orchestrated (process tree), {o['library_peak_rss_mb']:.0f} MB "
            f"library"
        )
        sizes = ", ".join(f"{k}: {v:.0f} s" for k, v in s["seconds"].items())
        lines.append(
            f"wall time by transfer size (library): {sizes}; {s['seconds_per_1000_examples']:.0f} s per "
            f"1000 examples + {s['fixed_seconds']:.0f} s fixed, linear fit R^2 {s['r2']:.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that the benchmark runs")
    parser.add_argument("--out", type=Path, default=REPO / ".w2s" / "bench" / "report.json")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads in this process (default: torch's own, one per core); 1 keeps figures "
        "meaningful on cores shared with other jobs, where a multi-threaded op waits for a descheduled thread",
    )
    args = parser.parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {SECTIONS}")
    os.environ.update({k: v for k, v in bench_env().items() if k not in ("PATH",)})
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    report = collect(sections, args.quick, args.out.parent / "scratch")
    report["ratios"] = ratios(report)
    report["total_seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(args.out)
    print(table(report))
    print(f"\nreport: {args.out} ({report['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
