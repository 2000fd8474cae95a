"""The guides of docs/guides/ on one's own data and on retraining, walked as a new user would: in a
copy of the repository made a git clone, every line of every `bash` block, verbatim and in order,
from the folder the guide is in (its `cd` lines followed, `source .venv/bin/activate` honoured),
in fresh processes with no MLflow or project setting exported. The retraining guide continues in
the project the first guide made. Each line must exit 0 (a line that may end otherwise says so
with `|| echo`), and what the guide says a step shows is checked (`EXPECT`).

Tiny where training is involved: the copied examples/reviews.yaml trains the strong model's first
two blocks for one epoch instead of all six for three (every other key as shipped).

Lines that need a Prefect server of the user's own (`prefect server start`, and every line that
names `PREFECT_API_URL`) are checked, not run: `w2s deploy` through the real parser (it serves
on a real server in test_servers.py), `prefect` subcommands exist, and the automation file of
step 6 is a valid Prefect automation that fires on the state a rejected retrain ends in.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from conftest import export_tree

REPO = Path(__file__).resolve().parents[2]
GUIDES = ("docs/guides/own-data.md", "docs/guides/retraining.md")  # the second continues the first
# What a guide says a command shows: a command's text (a substring) -> what its output holds.
EXPECT = {
    "w2s config show | head -14": "seed: 0",
    "w2s run --config reviews.yaml": "reviews-strong v",
    "w2s sweep --config sweep.yaml": "hardened",
    "w2s lineage reviews-strong@champion": "data",
}
TINY = ("  epochs: 3\n", "  epochs: 1\n  num_layers: 2\n")


def bash_lines(guide: Path) -> list[str]:
    """Every command line of the guide's bash blocks, in order (continuations joined)."""
    found = re.findall(r"^```bash\n(.*?)^```", guide.read_text(), flags=re.S | re.M)
    return [line for block in found for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def _clone(dest: Path) -> Path:
    """This repository as a fresh clone has it, with the environment `make install` made."""
    clone = export_tree(dest)
    (clone / ".venv").symlink_to(Path(sys.executable).parent.parent)
    config = clone / "examples" / "reviews.yaml"
    text = config.read_text()
    assert text.count(TINY[0]) == 1, "examples/reviews.yaml changed: update TINY"
    config.write_text(text.replace(*TINY))
    for git in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "clone"]):
        subprocess.run(["git", *git], cwd=clone, check=True, capture_output=True)
    return clone


def _env(clone: Path, activated: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "W2S_", "PREFECT_API_URL"))}
    for k, v in {"GIT_AUTHOR_NAME": "guide", "GIT_AUTHOR_EMAIL": "guide@example.com"}.items():
        env.setdefault(k, v)
        env.setdefault(k.replace("AUTHOR", "COMMITTER"), v)
    if activated:  # what `source .venv/bin/activate` exports
        env["VIRTUAL_ENV"] = str(clone / ".venv")
        env["PATH"] = f"{clone / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    return env


def _check_server_line(words: list[str], cwd: Path, env: dict[str, str]) -> None:
    """A line that needs the user's own Prefect server: checked, not run."""
    from w2s.cli.main import build_parser

    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words = words[1:]
    if words[0] == "w2s":
        build_parser().parse_args(words[1:])
    elif words[:3] == ["prefect", "automation", "create"]:
        _check_automation(cwd / words[words.index("--from-file") + 1])
    else:
        sub = [w for w in words[1:] if not w.startswith("-") and w != "&"][:2]
        done = subprocess.run(
            ["prefect", *sub, "--help"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{shlex.join(words)}: no such command\n{done.stderr[-1500:]}"


def _check_automation(path: Path) -> None:
    """The alert fires on the event Prefect emits when a retrain ends in the Rejected state."""
    from prefect.events.schemas.automations import AutomationCore, EventTrigger

    from w2s.flows.retrain import REJECTED, retrain

    automation = AutomationCore.model_validate(yaml.safe_load(path.read_text()))
    assert isinstance(automation.trigger, EventTrigger)
    assert automation.trigger.expect == {f"prefect.flow-run.{REJECTED}"}
    related = automation.trigger.match_related
    assert not isinstance(related, list) and related.root == {
        "prefect.resource.role": "flow",
        "prefect.resource.name": retrain.name,
    }


def test_own_data_and_retraining_guides_walked_verbatim(tmp_path: Path) -> None:
    clone = _clone(tmp_path / "w2s")
    cwd, activated, outputs = clone, False, []
    for guide in GUIDES:
        for line in bash_lines(clone / guide):
            words = shlex.split(line, comments=True)
            if words == ["source", ".venv/bin/activate"]:
                activated = True
            elif words[0] == "cd":
                cwd = (cwd / words[1]).resolve()
            elif "PREFECT_API_URL" in line or words[:3] == ["prefect", "server", "start"]:
                _check_server_line(words, cwd, _env(clone, activated))
            else:
                done = subprocess.run(["bash", "-c", line], cwd=cwd, env=_env(clone, activated),
                                      capture_output=True, text=True, timeout=900)  # fmt: skip
                assert done.returncode == 0, (
                    f"{guide}: `{line}` exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
                )
                outputs.append((line, done.stdout))
    for command, shown in EXPECT.items():
        (out,) = [o for line, o in outputs if line.startswith(command)][-1:]
        assert shown in out, f"`{command}` did not show {shown!r}:\n{out[-2000:]}"
    project = clone / "reviews"
    # step 3 of the first guide: every review scored, by the id column the user named
    scores = pd.read_parquet(project / "scores.parquet")
    assert len(scores) == len(pd.read_csv(project / "data" / "reviews.csv"))
    # step 2 of the retraining guide: the same data and config again is the same student
    unchanged = [o for line, o in outputs if line.startswith("w2s retrain")][2]
    assert "UNCHANGED" in unchanged, unchanged[-2000:]
    # step 3 of the retraining guide: the retrain versioned the new batch before it read it
    status = subprocess.run(
        ["dvc", "status", "data.dvc"], cwd=project, env=_env(clone, True), capture_output=True, text=True
    )
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout + status.stderr
