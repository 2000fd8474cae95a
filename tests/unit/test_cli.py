import pytest

from w2s.cli.main import main


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

    from w2s.cli.main import build_parser

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


def test_config_show_prints_the_effective_config_with_the_overrides(tmp_path, monkeypatch, capsys):
    import yaml

    from w2s.cli.main import main as w2s

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("W2S_PROJECT_DIR", raising=False)
    (tmp_path / "params.yaml").write_text("seed: 3\nstrong: {epochs: 4}\n")
    assert w2s(["config", "show", "--set", "strong.lr=1e-4", "--set", "data.labels=[neg, pos]"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["seed"] == 3 and shown["strong"]["epochs"] == 4.0 and shown["strong"]["lr"] == 1e-4
    assert shown["data"]["labels"] == ["neg", "pos"] and shown["method"] == "naive"
    assert w2s(["config", "show", "--set", "strong.epochz=1"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown config key 'strong.epochz'"


def test_w2s_init_makes_a_project_around_a_data_file_and_refuses_a_used_folder(tmp_path, monkeypatch, capsys):
    import subprocess

    import yaml

    from w2s.cli.main import main as w2s
    from w2s.config import load_config
    from w2s.pipeline.dvc_yaml import generate

    monkeypatch.chdir(tmp_path)
    (tmp_path / "reviews.csv").write_text("body,stars\ngreat,pos\nawful,neg\n")
    assert w2s(["init", "proj", "--data", "reviews.csv", "--set", "data.text_column=body"]) == 0
    proj = tmp_path / "proj"
    params = (proj / "params.yaml").read_text()
    assert "# Column holding the input text (file / HF sources)." in params, "every key comes with its help"
    cfg = load_config(proj / "params.yaml")
    assert (cfg.data.path, cfg.data.text_column, cfg.data.name) == ("data/reviews.csv", "body", None)
    assert yaml.safe_load(params)["strong"]["lr"] == 5e-5, "every key is listed"
    assert (proj / "dvc.yaml").read_text() == generate(code=False)
    assert (proj / "data" / "reviews.csv").is_file() and (proj / "data.dvc").is_file()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=proj, capture_output=True, text=True).stdout
    assert status == "", "everything is committed"
    capsys.readouterr()
    assert w2s(["init", "proj", "--data", "reviews.csv"]) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err
    assert w2s(["init", "other", "--data", "missing.csv"]) == 2 and not (tmp_path / "other").exists()
