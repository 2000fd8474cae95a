"""`w2s gc` on a real MLflow SQLite store and real project folders (no training: registered
versions are built from small logged models): age decides, a dry run removes nothing, only what
w2s marked is collected, nothing a user soft-deleted is purged, every registered model's kept
versions keep their cache entries and run folders, and gc waits for no run and no promotion."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from w2s.cli.main import main
from w2s.ops import activity, gc, model_registry, tracking
from w2s.ops.promotion import promotion_lock
from w2s.project import Project


def _entry(folder: Path, age_days: float) -> None:
    folder.mkdir(parents=True)
    (folder / "file.bin").write_bytes(b"x" * 1000)
    old = time.time() - age_days * gc.DAY_S
    for p in (folder, folder / "file.bin"):
        os.utime(p, (old, old))


@pytest.fixture
def empty_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("W2S_PROJECT_DIR", raising=False)
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    return Project(tmp_path)


def test_gc_removes_only_what_is_older_than_the_retention_and_a_dry_run_nothing(empty_project, capsys):
    project = empty_project
    _entry(project.cache_dir / "weak" / "old", 40)
    _entry(project.cache_dir / "weak" / "new", 1)
    _entry(project.cache_dir / "weak" / ".0123456789ab.x1y2", 40)  # the staging folder of a dead build
    _entry(project.runs_dir / "run-old", 40)
    _entry(project.runs_dir / "run-new", 1)

    assert main(["gc", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove: 2 cache entries, 1 run folders, 0 model versions" in out
    assert "kept: no registered version" in out
    assert (project.cache_dir / "weak" / "old").exists() and (project.runs_dir / "run-old").exists()

    assert main(["gc"]) == 0
    assert "removed: 2 cache entries, 1 run folders" in capsys.readouterr().out
    assert sorted(p.name for p in (project.cache_dir / "weak").iterdir()) == ["new"]
    assert sorted(p.name for p in project.runs_dir.iterdir()) == ["run-new"]

    assert main(["gc", "--older-than", "0", "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cache_entries"] == ["weak/new"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "--older-than must be a finite number of days >= 0, got -1.0"),
        ("nan", "--older-than must be a finite number of days >= 0, got nan"),
        ("inf", "--older-than must be a finite number of days >= 0, got inf"),
        ("0", "--older-than 0 days is under one hour: a run that has just finished may still be read"),
        ("0.01", "--older-than 0.01 days is under one hour"),
    ],
)
def test_a_retention_that_is_not_a_number_or_under_an_hour_is_refused_in_one_line(
    empty_project, capsys, value, message
):
    _entry(empty_project.runs_dir / "run-just-finished", 0)
    assert main(["gc", "--older-than", value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err
    assert (empty_project.runs_dir / "run-just-finished").is_dir()


def _logged_model(c, exp_id: str, run_id: str, folder: Path) -> str:
    """A logged model with 200 kB of files, as a registered w2s version has (weights)."""
    model = c.create_logged_model(exp_id, name="model", source_run_id=run_id)
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(os.urandom(200_000))
    c.log_model_artifacts(model.model_id, str(folder))
    c.finalize_logged_model(model.model_id, "READY")
    return model.model_id


def _version(c, project: Project, exp_id: str, name: str, tmp: Path, ours: bool = True, model_id: str | None = None):
    """A registered version behind a pipeline run (with its run folder and student cache entry,
    both old), as `w2s run` leaves them; `ours=False` is a version a user registered by hand."""
    run = c.create_run(exp_id)
    key = os.urandom(32).hex()
    model_id = model_id or _logged_model(c, exp_id, run.info.run_id, tmp / run.info.run_id)
    tags = {model_registry.STUDENT_KEY_TAG: key} if ours else {}
    version = c.create_model_version(name, f"models:/{model_id}", run.info.run_id, tags=tags, model_id=model_id)
    _entry(project.runs_dir / run.info.run_name, 40)
    _entry(project.cache_dir / "strong" / key, 40)
    return version, key, run.info.run_name, model_id


def test_gc_collects_only_what_w2s_registered_and_purges_nothing_a_user_soft_deleted(empty_project, tmp_path, capsys):
    """Two registered models; gc of one. The other model's kept versions keep their cache entries
    and run folders; a version a user registered by hand stays; a run and an experiment the user
    soft-deleted in the MLflow UI stay restorable (`mlflow gc` would have purged them)."""
    project = empty_project
    tracking.configure(project)
    c = tracking.client()
    exp_id = tracking.experiment_id(project, "w2s")
    for name in ("a", "b"):
        c.create_registered_model(name)
    a1, a1_key, a1_run, a1_model = _version(c, project, exp_id, "a", tmp_path)
    a2, a2_key, a2_run, a2_model = _version(c, project, exp_id, "a", tmp_path)
    a3, *_ = _version(c, project, exp_id, "a", tmp_path, ours=False)
    a4, *_ = _version(c, project, exp_id, "a", tmp_path, model_id=a1_model)  # shares the champion's model
    b1, b1_key, b1_run, _ = _version(c, project, exp_id, "b", tmp_path)
    b2, b2_key, b2_run, _ = _version(c, project, exp_id, "b", tmp_path)
    c.set_registered_model_alias("a", "champion", a1.version)
    c.set_registered_model_alias("b", "champion", b1.version)
    user_run = c.create_run(exp_id).info.run_id
    c.delete_run(user_run)
    user_exp = c.create_experiment("scratch")
    c.delete_experiment(user_exp)
    a2_files = Path(c.get_logged_model(a2_model).artifact_location.removeprefix("file://"))
    assert any(a2_files.rglob("model.safetensors"))

    assert main(["gc", "a", "--older-than", "0", "--force", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)

    assert done["versions"] == ["a/2", "a/4"]
    assert done["logged_models"] == [a2_model]  # a/4's model is the champion's too
    assert sorted(str(v.version) for v in c.search_model_versions("name='a'")) == ["1", "3"]
    assert sorted(str(v.version) for v in c.search_model_versions("name='b'")) == ["1", "2"]
    assert any("version(s) 3 were not registered by w2s" in n for n in done["notes"])
    assert not any(a2_files.rglob("*")), "the collected model's files are gone"
    assert any(Path(c.get_logged_model(a1_model).artifact_location.removeprefix("file://")).rglob("*"))
    left = {p.name for p in (project.cache_dir / "strong").iterdir()}
    assert {a1_key, b1_key, b2_key} <= left and a2_key not in left
    runs = {p.name for p in project.runs_dir.iterdir()}
    assert {a1_run, b1_run, b2_run} <= runs and a2_run not in runs
    assert c.get_run(user_run).info.lifecycle_stage == "deleted"  # still there, restorable
    c.restore_run(user_run)
    assert c.get_experiment(user_exp).lifecycle_stage == "deleted"


def test_gc_waits_for_no_run_at_work_and_takes_the_promotion_lock(empty_project, capsys):
    """A run at work (the activity lock held shared) stops gc in one line, exit 3, touching
    nothing. A promotion holding the model's lock holds gc back until it is done."""
    project = empty_project
    _entry(project.runs_dir / "run-old", 40)
    with activity.working(project):
        assert main(["gc"]) == 3
    err = capsys.readouterr().err.strip()  # MLflow may announce the store it creates, above
    assert "Traceback" not in err and err.splitlines()[-1].startswith("error: a w2s run is at work in")
    assert (project.runs_dir / "run-old").is_dir()

    codes: list[int] = []
    with promotion_lock(project, "w2s-strong"):
        worker = threading.Thread(target=lambda: codes.append(main(["gc"])))
        worker.start()
        worker.join(2.0)
        assert worker.is_alive() and (project.runs_dir / "run-old").is_dir(), "gc went ahead of the promotion"
    worker.join(60)
    assert codes == [0] and not (project.runs_dir / "run-old").exists()


def test_gc_marks_the_runs_of_a_killed_process_killed_and_spares_live_ones(empty_project, capsys):
    project = empty_project
    tracking.configure(project)
    c = tracking.client()
    exp_id = tracking.experiment_id(project, "w2s")
    dead_proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_proc.wait()
    dead_tags = {**activity.process_tags(), activity.PID_TAG: str(dead_proc.pid)}
    dead_tags[activity.STARTED_TAG] = "1"  # the pid may be reused: a different start time is another process
    dead = c.create_run(exp_id, tags=dead_tags).info.run_id
    stage = c.create_run(exp_id, tags={"mlflow.parentRunId": dead}).info.run_id
    live = c.create_run(exp_id, tags=activity.process_tags()).info.run_id
    other_host = c.create_run(exp_id, tags={**dead_tags, activity.HOST_TAG: "another-host"}).info.run_id

    assert main(["gc"]) == 0
    assert "marked KILLED: 2 run(s)" in capsys.readouterr().out
    status = {r: c.get_run(r).info.status for r in (dead, stage, live, other_host)}
    assert status == {dead: "KILLED", stage: "KILLED", live: "RUNNING", other_host: "RUNNING"}


@pytest.mark.parametrize(("sig", "code", "last"), [(2, 130, "error: interrupted"), (15, -15, None)])
def test_a_waiting_gc_stops_on_a_signal_with_the_documented_exit_code(empty_project, sig, code, last):
    """The console script, as a scheduler runs it: Ctrl-C (SIGINT) ends it with 130 and one
    line; SIGTERM ends it by the signal (a shell reports 143). Nothing is collected either way."""
    from conftest import BIN

    project = empty_project
    _entry(project.runs_dir / "run-old", 40)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "W2S_PROJECT_DIR"))}
    with activity.working(project):
        proc = subprocess.Popen(
            [str(BIN / "w2s"), "gc", "--wait", "600"],
            cwd=project.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # A child inherits an ignored SIGINT (left so by an earlier test in this worker, or by a
            # shell that started the suite in the background), and Python then installs no handler
            # for it; a scheduler's child starts with the default disposition.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert proc.stderr is not None
        for line in proc.stderr:  # the signal comes once gc is waiting, not while Python starts
            if line.startswith("gc: waiting up to 600 s"):
                break
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    if last is not None:
        assert err.strip().splitlines()[-1] == last and "Traceback" not in err
    assert (project.runs_dir / "run-old").is_dir()
