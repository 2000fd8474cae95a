"""DVC stage entry points: `python -m w2s.stages <stage>`, the same step code as the Prefect tasks.

Each stage reads `params.yaml`, takes its inputs from `outputs/` and writes its declared outputs
there; expensive steps go through the same content-addressed cache as the Prefect flow, so a
`dvc repro` after `w2s run` (or the reverse) reuses the trained models.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path

from w2s import steps, strong
from w2s.bootstrap import bootstrap_labels
from w2s.cache import ArtifactCache
from w2s.config import Config, load_config
from w2s.errors import W2SError
from w2s.io import copy_file, read_json, write_json
from w2s.project import Project
from w2s.refine.run import REFINED_METHODS, refine_supervisor
from w2s.refs import TEACHERS_FILE, ModelRef, SplitsRef, TableRef

OUT = Path("outputs")


def _ctx() -> tuple[Config, Project, ArtifactCache]:
    project = Project.discover()
    cfg = load_config(project.params_file if project.params_file.is_file() else None)
    (project.root / OUT).mkdir(exist_ok=True)
    return cfg, project, ArtifactCache(project.cache_dir)


def _save_ref(project: Project, json_path: Path, ref, field: str) -> None:
    """Store a step reference with its path relative to the project (outputs stay portable)."""
    data = asdict(ref)
    data[field] = str(Path(data[field]).resolve().relative_to(project.root))
    write_json(project.root / json_path, data)


def _load_ref(project: Project, cls, json_path: Path, field: str = "path"):
    """Read a reference written by `_save_ref`, its path made absolute again."""
    data = read_json(project.root / json_path)
    data[field] = str(project.root / data[field])
    return cls(**data)


def _table(project: Project) -> TableRef:
    return _load_ref(project, TableRef, OUT / "table.json")


def _splits(project: Project) -> SplitsRef:
    return _load_ref(project, SplitsRef, OUT / "splits.json")


def _model(project: Project, name: str) -> ModelRef:
    return _load_ref(project, ModelRef, OUT / name / "ref.json", "dir")


def _publish_model(project: Project, ref: ModelRef, name: str) -> None:
    """Copy a cache entry's predictions and training info into outputs/<name>/."""
    dest = project.root / OUT / name
    dest.mkdir(parents=True, exist_ok=True)
    for fname in ("preds.parquet", "info.json", TEACHERS_FILE):
        if fname != TEACHERS_FILE or (Path(ref.dir) / fname).is_file():
            copy_file(Path(ref.dir) / fname, dest / fname)
    _save_ref(project, OUT / name / "ref.json", replace(ref, dir=str(dest)), "dir")


def stage_ingest() -> None:
    cfg, project, _ = _ctx()
    _save_ref(project, OUT / "table.json", steps.ingest(cfg, project, project.root / OUT), "path")


def stage_validate() -> None:
    cfg, project, _ = _ctx()
    report = steps.validate_table(_table(project), cfg)
    write_json(project.root / OUT / "gate_raw_table.json", report.as_dict())


def stage_split() -> None:
    cfg, project, _ = _ctx()
    ref, report = steps.make_splits(_table(project), cfg, project.root / OUT)
    _save_ref(project, OUT / "splits.json", ref, "path")
    write_json(project.root / OUT / "gate_split_overlap.json", report.as_dict())


def stage_weak() -> None:
    cfg, project, cache = _ctx()
    _publish_model(project, steps.train_weak(_splits(project), cfg, cache), "weak")


def stage_labels() -> None:
    _, project, _ = _ctx()
    steps.make_weak_labels(_splits(project), _model(project, "weak"), _table(project),
                           project.root / OUT / "weak_labels.parquet")


def stage_refine() -> None:
    """The labels the student learns from: the weak labels, refined when the method says so."""
    cfg, project, cache = _ctx()
    dest = project.root / OUT / "refined"
    shutil.rmtree(dest, ignore_errors=True)
    target = project.root / OUT / "student_labels.parquet"
    if cfg.method not in REFINED_METHODS:
        dest.mkdir(parents=True)
        write_json(dest / "info.json", {"method": cfg.method, "refined": False})
        source = project.root / OUT / "weak_labels.parquet"
        # sidecar first: a published label file always has its sidecar beside it
        copy_file(source.with_suffix(".json"), target.with_suffix(".json"))
        copy_file(source, target)
        return
    splits = _splits(project)
    ref = refine_supervisor(splits, _model(project, "weak"), cfg, cache)
    _publish_model(project, ref, "refined")
    steps.make_weak_labels(splits, ref, _table(project), target)


def stage_strong(role: str) -> None:
    cfg, project, cache = _ctx()
    splits = _splits(project)
    if role == "ceiling":
        _publish_model(project, strong.train_strong(splits, cfg, cache, "ceiling"), role)
        return
    path = project.root / OUT / "student_labels.parquet"
    labels = {**read_json(path.with_suffix(".json")), "path": str(path)}
    if cfg.method == "bootstrap":
        labels = bootstrap_labels(splits, cfg, cache, _table(project), labels, project.root / OUT)[-1][1]
    ref = strong.train_strong(splits, cfg, cache, "w2s", labels["path"], labels["md5"])
    _publish_model(project, ref, role)


def stage_evaluate() -> None:
    _, project, _ = _ctx()
    refined = _model(project, "refined") if (project.root / OUT / "refined" / "ref.json").is_file() else None
    metrics = steps.evaluate(_splits(project), _model(project, "weak"),
                             _model(project, "w2s"), _model(project, "ceiling"), refined)
    write_json(project.root / "metrics.json", metrics)


STAGES = {
    "ingest": stage_ingest, "validate": stage_validate, "split": stage_split,
    "weak": stage_weak, "labels": stage_labels, "refine": stage_refine,
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
