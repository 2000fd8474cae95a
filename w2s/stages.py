"""DVC stage entry points: `python -m w2s.stages <stage>`, the same step code as the Prefect tasks.

Each stage reads `params.yaml`, takes its inputs from `outputs/` and writes its declared outputs
there; expensive steps go through the same content-addressed cache as the Prefect flow, so a
`dvc repro` after `w2s run` (or the reverse) reuses the trained models.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from w2s import steps, strong
from w2s.bootstrap import bootstrap_labels
from w2s.cache import ArtifactCache
from w2s.config import Config, load_config
from w2s.errors import W2SError
from w2s.io import read_json, write_json
from w2s.project import Project
from w2s.refs import ModelRef, SplitsRef, TableRef

OUT = Path("outputs")


def _ctx() -> tuple[Config, Project, ArtifactCache]:
    project = Project.discover()
    cfg = load_config(project.params_file if project.params_file.is_file() else None)
    (project.root / OUT).mkdir(exist_ok=True)
    return cfg, project, ArtifactCache(project.cache_dir)


def _table(project: Project) -> TableRef:
    return TableRef(**read_json(project.root / OUT / "table.json"))


def _splits(project: Project) -> SplitsRef:
    return SplitsRef(**read_json(project.root / OUT / "splits.json"))


def _publish_model(project: Project, ref: ModelRef, name: str) -> None:
    """Copy a cache entry's predictions and training info into outputs/<name>/."""
    dest = project.root / OUT / name
    dest.mkdir(parents=True, exist_ok=True)
    for fname in ("preds.parquet", "info.json"):
        shutil.copyfile(Path(ref.dir) / fname, dest / fname)
    write_json(dest / "ref.json", {**asdict(ref), "dir": str(dest.relative_to(project.root))})


def _model(project: Project, name: str) -> ModelRef:
    ref = read_json(project.root / OUT / name / "ref.json")
    ref["dir"] = str(project.root / ref["dir"])
    return ModelRef(**ref)


def stage_ingest() -> None:
    cfg, project, _ = _ctx()
    ref = steps.ingest(cfg, project, project.root / OUT)
    write_json(project.root / OUT / "table.json", {**asdict(ref), "path": str(OUT / "table.parquet")})


def stage_validate() -> None:
    cfg, project, _ = _ctx()
    table = _table(project)
    report = steps.validate_table(TableRef(**{**asdict(table), "path": str(project.root / table.path)}), cfg)
    write_json(project.root / OUT / "gate_raw_table.json", report.as_dict())


def stage_split() -> None:
    cfg, project, _ = _ctx()
    table = _table(project)
    table = TableRef(**{**asdict(table), "path": str(project.root / table.path)})
    ref, report = steps.make_splits(table, cfg, project.root / OUT)
    write_json(project.root / OUT / "splits.json", {**asdict(ref), "path": str(OUT / "splits.parquet")})
    write_json(project.root / OUT / "gate_split_overlap.json", report.as_dict())


def _abs_splits(project: Project) -> SplitsRef:
    s = _splits(project)
    return SplitsRef(**{**asdict(s), "path": str(project.root / s.path)})


def stage_weak() -> None:
    cfg, project, cache = _ctx()
    _publish_model(project, steps.train_weak(_abs_splits(project), cfg, cache), "weak")


def stage_labels() -> None:
    _, project, _ = _ctx()
    table = _table(project)
    steps.make_weak_labels(
        _abs_splits(project), _model(project, "weak"), table, project.root / OUT / "weak_labels.parquet"
    )


def stage_strong(role: str) -> None:
    cfg, project, cache = _ctx()
    splits = _abs_splits(project)
    if role == "ceiling":
        _publish_model(project, strong.train_strong(splits, cfg, cache, "ceiling"), role)
        return
    path = project.root / OUT / "weak_labels.parquet"
    labels = {**read_json(path.with_suffix(".json")), "path": str(path)}
    if cfg.method == "bootstrap":
        labels = bootstrap_labels(splits, cfg, cache, _table(project), labels, project.root / OUT)[-1][1]
    ref = strong.train_strong(splits, cfg, cache, "w2s", labels["path"], labels["md5"])
    _publish_model(project, ref, role)


def stage_evaluate() -> None:
    _, project, _ = _ctx()
    metrics = steps.evaluate(_abs_splits(project), _model(project, "weak"),
                             _model(project, "w2s"), _model(project, "ceiling"))
    write_json(project.root / "metrics.json", metrics)


STAGES = {
    "ingest": stage_ingest, "validate": stage_validate, "split": stage_split,
    "weak": stage_weak, "labels": stage_labels,
    "student": lambda: stage_strong("w2s"), "ceiling": lambda: stage_strong("ceiling"),
    "evaluate": stage_evaluate,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m w2s.stages",
                                     description="Run one pipeline stage for `dvc repro`.")
    parser.add_argument("stage", choices=sorted(STAGES))
    args = parser.parse_args(argv)
    try:
        STAGES[args.stage]()
    except W2SError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
