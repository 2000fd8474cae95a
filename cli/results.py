"""The results table printed at the end of `w2s run`, and where to look next."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from w2s.cli.ui import views
from w2s.project import Project

if TYPE_CHECKING:
    from w2s.flows.pipeline import PipelineResult


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def print_results(result: PipelineResult, project: Project) -> None:
    """A readable terminal summary: models, PGR, agreement, and the follow-up commands."""
    from rich.console import Console

    console = Console(soft_wrap=True)
    _models_table(console, result)
    _gap_tables(console, result)
    _notes(console, result)
    _next_steps(console, result, project)


def _models_table(console: Any, result: PipelineResult) -> None:
    from rich.table import Table

    m, reused = result.metrics, result.reused
    table = Table(title="weak-to-strong results (test split)", title_justify="left")
    table.add_column("model")
    table.add_column("accuracy", justify="right")
    table.add_column("AUROC", justify="right")
    table.add_column("from", style="dim")
    rows = (
        ("weak supervisor", "weak", "weak"),
        ("strong on the weak budget's ground truth", "strong_budget", "budget"),
        ("strong ceiling", "ceiling", "ceiling"),
        ("weak-to-strong", "w2s", "w2s"),
    )
    for label, key, step in rows:
        table.add_row(label, _fmt(m[f"{key}_acc"]), _fmt(m[f"{key}_auroc"]), "cache" if reused[step] else "trained")
    console.print(table)


def _gap_tables(console: Any, result: PipelineResult) -> None:
    """PGR and agreement; the held-out groups' numbers under shift."""
    from rich.table import Table

    m = result.metrics
    gap = Table(show_header=True, title_justify="left")
    for col in ("PGR (accuracy)", "PGR (AUROC)", "agreement", "on weak-right", "on weak-wrong"):
        gap.add_column(col, justify="right")
    keys = ("pgr", "pgr_auroc", "agreement", "agreement_weak_correct", "agreement_weak_wrong")
    gap.add_row(*(_fmt(m[k]) for k in keys))
    console.print(gap)
    if m.get("w2s_acc_ood") is not None:
        ood = Table(title="out of distribution (ood_test: held-out groups)", title_justify="left")
        for col in ("weak acc", "ceiling acc", "w2s acc", "PGR"):
            ood.add_column(col, justify="right")
        ood.add_row(*(_fmt(m[k]) for k in ("weak_acc_ood", "ceiling_acc_ood", "w2s_acc_ood", "pgr_ood")))
        console.print(ood)


def _notes(console: Any, result: PipelineResult) -> None:
    """What the method did to the labels, the splits, and why PGR is missing when it is."""
    m = result.metrics
    if m.get("refined_acc") is not None:
        line = (
            f"method {result.method}: refined labels test acc {_fmt(m['refined_acc'])}; "
            f"transfer label acc {_fmt(m['weak_transfer_acc'])} (weak) -> {_fmt(m['labels_transfer_acc'])} "
            f"(diagnostic, uses transfer ground truth after the fact)"
        )
        self_labelled = m.get("self_label_frac")
        if self_labelled is not None:
            line += f"; self-labelled {100 * self_labelled:.1f}% of transfer"
        console.print(line)
    oracle = "  [bold red](oracle ablation: uses ground truth)[/]" if result.early_stopping == "oracle" else ""
    splits = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    console.print(f"splits: {splits}; early stopping: {result.early_stopping}{oracle}")
    if m["pgr"] is None:
        gap_seen, floor = m.get("gap"), m.get("min_gap")
        if gap_seen is not None and floor is not None and gap_seen > 0:
            console.print(
                f"PGR not reported: gap too small (ceiling - weak = {gap_seen:.3f} is under "
                f"eval.min_gap = {floor:.3f}, what the test set can resolve)."
            )
        else:
            console.print("PGR is undefined: the ceiling did not beat the weak supervisor.")


def _next_steps(console: Any, result: PipelineResult, project: Project) -> None:
    console.print("\n[bold]where to look next[/]")
    console.print(f"  run folder      {result.run_dir}")
    console.print(f"  metrics         {project.root / 'metrics.json'}")
    for line in views(project):
        console.print(f"  {line}", markup=False)
    model = result.model
    if model:
        console.print(
            f"  registered      {model['name']} v{model['version']} "
            f'(alias @{model["alias"]}): mlflow.pyfunc.load_model("{model["uri"]}")'
        )
    labels = result.weak_labels
    dvc = labels.dvc
    where = f" (DVC: {dvc['dvc_file']}, pushed to '{dvc['remote']}')" if dvc else ""
    console.print(f"  weak labels     {labels.path} md5 {labels.md5}{where}")
