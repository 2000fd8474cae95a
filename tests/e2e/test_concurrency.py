"""Two pipeline runs started at once on one fresh project (same data, different seeds): both
finish, and the DVC repository, the artifact cache and the registry stay consistent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from w2s.core.cache import MANIFEST, ArtifactCache
from w2s.io import file_md5

from conftest import BIN, TINY_CONFIG, make_project


def test_two_runs_at_once_on_one_project_both_finish_and_leave_every_store_consistent(tmp_path, bundled_dir):
    # The stores under two writers are the subject, not the models: a cheaper student.
    cfg = {**TINY_CONFIG, "strong": {**TINY_CONFIG["strong"], "max_length": 16, "evals_per_epoch": 1}}
    project = make_project(tmp_path / "proj", bundled_dir, cfg)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    # Both start against a project with no MLflow store, no cache and no weak labels yet: the
    # store's schema creation, DVC's repository lock and the cache all see both at once.
    procs = [
        subprocess.Popen(
            [str(BIN / "w2s"), "run", "--json", "--set", f"seed={seed}"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (0, 1)
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-4000:]
    results = [json.loads(out) for out, _ in outs]

    # Registry: one version per run, each pointing at its own run's seed.
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / '.w2s' / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    versions = client.search_model_versions("name='w2s-test'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]
    seeds = {client.get_run(r["mlflow_run_id"]).data.params["seed"] for r in results}
    assert seeds == {"0", "1"}
    assert {client.get_run(r["mlflow_run_id"]).info.status for r in results} == {"FINISHED"}

    # DVC: each run's weak labels are tracked with the md5 the run recorded, and pushed.
    for r in results:
        labels = Path(r["weak_labels"]["path"])
        meta = yaml.safe_load(labels.with_name(labels.name + ".dvc").read_text())
        assert meta["outs"][0]["md5"] == r["tags"]["weak_labels_md5"] == file_md5(labels)
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--cloud"], cwd=project, capture_output=True, text=True
    )
    assert status.returncode == 0 and "in sync" in status.stdout, status.stdout + status.stderr
    assert len({r["tags"]["weak_labels_md5"] for r in results}) == 2

    # Cache: every sealed entry verifies against its manifest; nothing half-built is left.
    cache = ArtifactCache(project / ".w2s" / "cache")
    entries = [m.parent for m in cache.root.rglob(MANIFEST)]
    assert len(entries) >= 4  # two weak models, two ceilings (and the students)
    for entry in entries:
        assert cache.lookup(entry.parent.name, entry.name) == entry
    assert not [p for p in project.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]
    assert not [p for p in cache.root.glob("*/.*") if p.is_dir()]  # no staging folders
