"""`w2s gc` on a project's own folders: age decides, a dry run removes nothing, and a project with
nothing registered yet is collected without error (a real MLflow SQLite store, no models)."""

from __future__ import annotations

import os
import time

from cli.main import main
from w2s.ops import gc
from w2s.project import Project


def _entry(folder, age_days: float) -> None:
    folder.mkdir(parents=True)
    (folder / "file.bin").write_bytes(b"x" * 1000)
    old = time.time() - age_days * gc.DAY_S
    for p in (folder, folder / "file.bin"):
        os.utime(p, (old, old))


def test_gc_removes_only_what_is_older_than_the_retention_and_a_dry_run_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    project = Project(tmp_path)
    _entry(project.cache_dir / "weak" / "old", 40)
    _entry(project.cache_dir / "weak" / "new", 1)
    _entry(project.cache_dir / "weak" / ".staging", 40)  # a build in progress: never touched
    _entry(project.runs_dir / "run-old", 40)
    _entry(project.runs_dir / "run-new", 1)

    assert main(["gc", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove: 1 cache entries, 1 run folders, 0 model versions" in out
    assert "kept: no registered version" in out
    assert (project.cache_dir / "weak" / "old").exists() and (project.runs_dir / "run-old").exists()

    assert main(["gc"]) == 0
    assert "removed: 1 cache entries, 1 run folders" in capsys.readouterr().out
    left = sorted(p.name for p in (project.cache_dir / "weak").iterdir())
    assert left == [".staging", "new"] and sorted(p.name for p in project.runs_dir.iterdir()) == ["run-new"]

    assert main(["gc", "--older-than", "0", "--json"]) == 0
    assert '"cache_entries": [\n    "weak/new"\n  ]' in capsys.readouterr().out
    assert main(["gc", "--older-than", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "error: --older-than must be a number of days >= 0, got -1.0"
