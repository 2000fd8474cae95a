import pytest

from cli.main import main


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["--help"], "examples:"),
        (["run", "--help"], "w2s run --set"),
        (["data", "fetch", "--help"], "example:"),
    ],
)
def test_every_verb_has_help_with_an_example(argv, expect, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert expect in capsys.readouterr().out


def test_no_command_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "usage: w2s" in capsys.readouterr().err


def test_data_fetch_is_idempotent_and_keeps_the_dvc_md5(project, bundled_dir, capsys):
    import shutil

    shutil.rmtree(project / "data")
    shutil.copytree(bundled_dir, project / "data")
    assert main(["data", "fetch"]) == 0
    first = (project / "data.dvc").read_text()
    assert main(["data", "fetch"]) == 0
    assert (project / "data.dvc").read_text() == first
    out = capsys.readouterr().out
    assert "md5 verified" in out and "pushed to DVC remote 'local'" in out


def test_every_verb_that_ends_has_json_output():
    """A scheduler reads results, not tables: every verb has --json except `deploy` and `ui`,
    which serve until stopped and have no result to print."""
    import argparse

    from cli.main import build_parser

    def verbs(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
        out = {}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    nested = verbs(sub, f"{prefix}{name} ")
                    out.update(nested or {f"{prefix}{name}": sub})
        return out

    found = verbs(build_parser())
    without = sorted(v for v, p in found.items() if not any("--json" in a.option_strings for a in p._actions))
    assert without == ["deploy", "ui"], without
    assert {"run", "sweep", "retrain", "promote", "rollback", "lineage", "reproduce", "gc", "data fetch"} <= set(found)
