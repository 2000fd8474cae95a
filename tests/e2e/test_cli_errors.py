"""Bad input through the real CLI: one clear line on stderr, exit code 2, nothing registered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from w2s.cli.main import main


def _registered_models(project: Path) -> list[str]:
    db = project / ".w2s" / "mlflow.db"
    if not db.exists():
        return []
    from mlflow import MlflowClient

    return [m.name for m in MlflowClient(f"sqlite:///{db}").search_registered_models()]


def _csv(project: Path, rows: list[tuple], name: str = "d.csv") -> None:
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(project / name, index=False)


def _good_rows(n: int = 700) -> list[tuple]:
    return [
        (f"sample text number {i} about {'cats' if i % 2 else 'dogs'}", "pos" if i % 2 else "neg") for i in range(n)
    ]


def _run(capsys, *sets: str) -> tuple[int, str]:
    args = ["run"]
    for s in sets:
        args += ["--set", s]
    code = main(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "setup, sets, message",
    [
        ("missing_column", ["data.path=d.csv", "data.text_column=body"], "no column 'body' (data.text_column)"),
        (
            "unknown_label",
            ["data.path=d.csv", "data.labels=[pos, neg]"],
            "expect_column_values_to_be_in_set on column 'label'",
        ),
        ("empty_file", ["data.path=d.csv"], "the file is empty"),
        ("nan_text", ["data.path=d.csv"], "expect_column_values_to_not_be_null on column 'text'"),
        ("none", ["strong.epochz=1"], "unknown config key 'strong.epochz'"),
        ("none", ["data.path=../outside.csv"], "data.path '../outside.csv' escapes the project folder"),
        ("none", ["data.path=absent.csv"], "data file not found"),
        ("none", ["strong.model=no-such-org/no-such-model"], "model 'no-such-org/no-such-model' is not"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_registers_nothing(project, capsys, setup, sets, message):
    rows = _good_rows()
    if setup == "missing_column" or setup == "nan_text":
        if setup == "nan_text":
            rows[5] = (None, "pos")
        _csv(project, rows)
    elif setup == "unknown_label":
        rows[3] = ("an odd one", "maybe")
        _csv(project, rows)
    elif setup == "empty_file":
        (project / "d.csv").write_text("")
    code, err = _run(capsys, *sets)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, err[-1500:]
    assert "Traceback" not in err
    assert _registered_models(project) == []


def test_validation_failure_in_a_fresh_process_prints_no_traceback(project):
    """The console script as a user runs it: Prefect's own logs must not carry a stack trace."""
    rows = _good_rows()
    rows[7] = ("   ", "neg")
    _csv(project, rows)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(
        ["w2s", "run", "--set", "data.path=d.csv"], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 2
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both, both[-3000:]
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: validation gate 'raw_table' failed: expect_column_values_to_not_match_regex on column 'text'"
        )
    )
    assert _registered_models(project) == []
