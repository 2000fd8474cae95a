"""docs/results.md as committed: every generated table equals what `w2s results check` computes
from the stored sweeps, pulled from the repository's own DVC remote into a copy that has only what
a fresh clone has (no workspace copy of the stored outputs, no DVC cache)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import REPO, export_tree


def test_the_committed_results_doc_matches_its_stored_sweeps_on_a_fresh_copy(tmp_path: Path, monkeypatch, capsys):
    from w2s.cli.main import main

    root = export_tree(tmp_path / "repo")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    doc = (root / "docs" / "results.md").read_text()
    names = set(re.findall(r"^<!-- results:(\S+) ", doc, flags=re.M))
    assert names, "docs/results.md has generated blocks"
    assert not any((root / "results" / name).exists() for name in names), "a fresh copy holds only .dvc files"
    assert not (root / ".dvc" / "cache").exists()

    monkeypatch.chdir(root)
    monkeypatch.delenv("W2S_PROJECT_DIR", raising=False)
    assert main(["results", "check"]) == 0, capsys.readouterr().err
    assert "generated blocks match their stored sweeps" in capsys.readouterr().out
    for name in names:
        assert (root / "results" / name / "points.json").is_file(), f"pulled {name} from the remote 'results'"
    assert (REPO / "results" / "seed-ledger.json").is_file()
