"""A new project laid out for the pipeline, as `w2s init` makes it for a user outside this
repository: a commented params.yaml listing every key (pointed at the user's data file), the
generated dvc.yaml (so `dvc repro` runs there), the data under data/ tracked by DVC and pushed to
the project's remote, all committed in a new git repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from w2s.config import load_config, parse_override
from w2s.config_docs import params_template
from w2s.errors import ConfigError
from w2s.ops.scaffold import commit, init_project
from w2s.ops.versioning import add_and_push
from w2s.pipeline.dvc_yaml import generate
from w2s.project import STATE_DIR, Project


def new_project(
    root: Path,
    data_files: list[Path],
    overrides: list[str],
    remote: str | None = None,
    extra_files: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`w2s init`: a new project at `root` (absent or empty) with `data_files` under data/ and
    params.yaml reading the first of them (`overrides`, `key=value`, on top), the generated
    dvc.yaml, and `remote` (default: `.w2s/dvc-remote` in the project) as its DVC remote. The
    config is validated before anything is written; `extra_files` (name -> text) are written
    beside params.yaml. Returns what was made."""
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"{root} already exists and is not an empty folder: w2s init makes a new project")
    missing = [str(f) for f in data_files if not f.is_file()]
    if missing:
        raise ConfigError(f"data file not found: {missing[0]}")
    tree: dict[str, Any] = {}
    if data_files:
        tree["data"] = {"name": None, "path": f"data/{data_files[0].name}"}
    for item in overrides:
        key, value = parse_override(item)
        node = tree
        *parents, leaf = key.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value
    load_config(None, overrides + ([f"data.path=data/{data_files[0].name}", "data.name=null"] if data_files else []))
    remote = remote or str(Path(root) / STATE_DIR / "dvc-remote")
    init_project(root, data_files, {}, remote)
    (root / "params.yaml").write_text(params_template(tree))
    (root / "dvc.yaml").write_text(generate(code=False))
    for name, text in (extra_files or {}).items():  # the orchestration's own files (prefect.yaml)
        (root / name).write_text(text)
    version = add_and_push(Project(root), root / "data") if data_files else None
    commit(root, "w2s init: params, dvc.yaml and the data version")
    return {
        "project": str(root),
        "data": [f"data/{f.name}" for f in data_files],
        "dvc_remote": remote,
        "data_md5": version.md5 if version else None,
    }
