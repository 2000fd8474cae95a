"""The CLI's contract with a scheduler: distinct exit codes, a version, and no credential echoed."""

from __future__ import annotations

import argparse

import pytest

import w2s.cli.main as cli_main
from w2s.errors import ConfigError, ServiceUnavailable, redact

from conftest import REPO


def test_credentials_in_uris_are_redacted_and_nothing_else_changes():
    msg = "MLflow tracking server http://alice:s3cr3t@mlflow:5000 is unreachable; db postgresql://w2s:pw@db/x"
    assert redact(msg) == (
        "MLflow tracking server http://alice:***@mlflow:5000 is unreachable; db postgresql://w2s:***@db/x"
    )
    plain = "sqlite:////srv/w2s/mlflow.db and http://mlflow:5000 and user@example.com"
    assert redact(plain) == plain


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli_main.main(["--version"])
    import w2s

    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"w2s {w2s.__version__}"
    assert w2s.__version__ in (REPO / "CHANGELOG.md").read_text(), "every version is in the changelog"


@pytest.mark.parametrize(
    ("raised", "code", "line"),
    [
        (ConfigError("config key 'x': bad"), 2, "error: config key 'x': bad"),
        (ServiceUnavailable("at http://u:pw@h:1"), 3, "error: at http://u:***@h:1"),
        (RuntimeError("boom at http://u:pw@h:1"), 4, "error: internal error: boom at http://u:***@h:1"),
    ],
)  # fmt: skip
def test_each_kind_of_failure_has_its_own_exit_code(monkeypatch, capsys, raised, code, line):
    def failing(_args):
        raise raised

    parser = argparse.ArgumentParser(prog="w2s")
    parser.set_defaults(func=failing)
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    assert cli_main.main([]) == code
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == line
    assert ("Traceback" in err) == (code == 4), "a traceback only for a bug"
