"""A clean install: the wheel puts only `w2s` into site-packages (the command line, flows and tasks
as w2s.cli, w2s.flows and w2s.tasks), and a user who never cloned this repository starts a
project with `w2s init` and runs the pipeline on their own CSV with the wheel's code alone."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a fresh copy of the tracked tree (a checkout's build/ folder can hold
    modules that no longer exist, which an in-place build would package)."""
    from conftest import export_tree

    out = tmp_path_factory.mktemp("wheel")
    tree = export_tree(tmp_path_factory.mktemp("tree"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(tree)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = out.glob("w2s-*.whl")
    return found


def test_the_wheel_installs_only_w2s(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"w2s"}, top
    for module in ("w2s/cli/main.py", "w2s/flows/pipeline.py", "w2s/tasks/step.py", "w2s/pipeline/sequence.py"):
        assert module in names
    meta = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "w2s = w2s.cli.main:main" in zipfile.ZipFile(wheel).read(meta).decode()


def _reviews(path: Path, n: int = 320) -> None:
    """A user's own file: their column names, their labels, no id column."""
    good = ["loved it", "works great", "would buy again", "excellent value", "five stars, happy"]
    bad = ["broke in a week", "waste of money", "never again", "arrived damaged", "one star, sad"]
    rows = [
        {"body": f"{(good if i % 2 else bad)[i % 5]} (order {i})", "stars": "pos" if i % 2 else "neg"} for i in range(n)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)


def test_w2s_init_and_run_on_a_users_csv_with_only_the_wheel_installed(wheel: Path, tmp_path: Path):
    """A fresh virtualenv with the wheel installed and nothing else of this repository (its
    dependencies come from this environment's site-packages, read-only, without the editable
    install of the checkout); a folder outside the repository; the user's CSV."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    # the dependencies, as a path only: no .pth of that folder runs (so no editable finder)
    (Path(purelib) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)]
    done = subprocess.run(pip, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "W2S_", "PYTHONPATH"))}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    where = subprocess.run([str(py), "-c", "import w2s.cli.main as m; print(m.__file__)"], capture_output=True,
                           text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert where.stdout.strip().startswith(purelib), "the wheel's code, not this checkout's"

    home = tmp_path / "outside"
    home.mkdir()
    _reviews(home / "reviews.csv")
    init = [
        "w2s", "init", "my-project", "--data", "reviews.csv", "--set", "data.text_column=body",
        "--set", "data.label_column=stars", "--set", "split={weak_train: 40, transfer: 120, val: 40, test: 100}",
        "--set", "strong.num_layers=1", "--set", "strong.max_length=16", "--set", "strong.epochs=1",
        "--set", "eval.min_gap=0.0",
    ]  # fmt: skip
    done = subprocess.run(init, cwd=home, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    project = home / "my-project"
    run = subprocess.run(["w2s", "run", "--json"], cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    import json

    result = json.loads(run.stdout[run.stdout.index("{") :])
    assert result["model"]["name"] == "w2s-strong" and result["counts"]["test"] == 100
    assert 0.0 <= result["metrics"]["w2s_acc"] <= 1.0
    assert (project / "metrics.json").is_file() and (project / "data.dvc").is_file()
