"""The seed ledger and the confirmatory protocol: testbeds, the refusal of a confirmatory sweep on
used seeds or an uncommitted protocol (through the real `w2s sweep`, before anything runs), and
the git facts recorded. A real sweep recording itself is in tests/e2e/test_sweep.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from w2s.config import load_config
from w2s.errors import ConfigError
from w2s.pipeline import seed_ledger
from w2s.pipeline.sweep_grid import SweepConfig, expand
from w2s.project import Project

from conftest import TINY_CONFIG


def _cfg(*sets: str):
    return load_config(None, ["data.name=election-tweets", *sets])


def test_a_testbed_is_the_data_and_the_held_out_groups_not_the_split_sizes():
    key, settings = seed_ledger.testbed(_cfg())
    assert key.startswith("election-tweets@") and len(key.split("@")[1]) == 8
    assert settings == {"data": {}, "ood_groups": []}, "defaults are left out, so new keys rename nothing"
    # the same seed with another test size reuses rows (one permutation, cut in order): same testbed
    assert seed_ledger.testbed(_cfg("split.test=500", "split.transfer=300"))[0] == key
    assert seed_ledger.testbed(_cfg("strong.epochs=8", "method=corrector"))[0] == key
    assert seed_ledger.testbed(_cfg("data.max_rows=900"))[0] != key
    assert seed_ledger.testbed(_cfg("data.name=reuters-r8"))[0].startswith("reuters-r8@")
    held = seed_ledger.testbed(_cfg("data.name=20newsgroups-super", "split.ood_groups=[sci.space]"))[0]
    assert held != seed_ledger.testbed(_cfg("data.name=20newsgroups-super"))[0]


def _entry(name: str, seeds: dict[str, list[int]], confirmatory: bool, uncommitted: list[str] | None = None) -> dict:
    return {
        "sweep": name,
        "config": f"configs/{name}.yaml",
        "commit": "0" * 40,
        "uncommitted": uncommitted or [],
        "confirmatory": confirmatory,
        "seeds": seeds,
        "date": "2025-01-02T03:04:05Z",
    }


def test_check_refuses_a_confirmatory_sweep_on_used_seeds_and_nothing_else():
    ledger = {"version": 1, "sweeps": [_entry("explore", {"tweets@1": [0, 1, 2], "r8@2": [5]}, False)]}
    with pytest.raises(ConfigError) as err:
        seed_ledger.check(ledger, _entry("confirm", {"tweets@1": [2, 3, 4], "r8@2": [6]}, True))
    message = str(err.value)
    assert "\n" not in message
    assert (
        "seed(s) 2 on testbed tweets@1 were used by sweep explore (configs/explore.yaml, exploratory, 2025-01-02)"
        in (message)
    )
    # fresh seeds pass; the same seeds on another testbed are fresh there; exploring reuses freely
    seed_ledger.check(ledger, _entry("confirm", {"tweets@1": [3, 4], "r8@2": [0, 1, 2]}, True))
    seed_ledger.check(ledger, _entry("again", {"tweets@1": [0, 1, 2]}, False))
    with pytest.raises(ConfigError, match=r"configs/sweep.yaml not as committed in git"):
        seed_ledger.check(ledger, _entry("confirm", {"tweets@1": [9]}, True, ["configs/sweep.yaml"]))
    no_file = {**_entry("confirm", {"tweets@1": [9]}, True), "config": None}
    with pytest.raises(ConfigError, match="no sweep config file"):
        seed_ledger.check(ledger, no_file)


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository holding the tiny params.yaml and a committed sweep config. Its data file is
    missing: what is tested here stops before a point would read it (a refusal, or the preflight's
    data check)."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump({**TINY_CONFIG, "data": {"path": "data/tweets.csv"}}))
    (root / "configs").mkdir()
    (root / "configs" / "sweep.yaml").write_text(
        "base: params.yaml\nconfirmatory: true\ngrid:\n  strong.loss: [xent, logconf]\n  seed: [3, 4]\n"
    )
    _git(root.parent, "init", "-q", str(root))
    _git(root, "config", "user.email", "w2s@example.com")
    _git(root, "config", "user.name", "w2s")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "protocol")
    monkeypatch.chdir(root)
    monkeypatch.delenv("W2S_PROJECT_DIR", raising=False)
    return root


def test_the_config_source_is_its_commit_and_what_differs_from_it(repo: Path):
    config, base = repo / "configs" / "sweep.yaml", repo / "params.yaml"
    source = seed_ledger.config_source(config, base)
    assert source.path == "configs/sweep.yaml" and source.commit == _git(repo, "rev-parse", "HEAD")
    assert source.uncommitted == [] and not source.tree_dirty
    base.write_text(base.read_text() + "seed: 1\n")
    assert seed_ledger.config_source(config, base).uncommitted == ["params.yaml"]
    (repo / "configs" / "new.yaml").write_text("grid: {seed: [0]}\n")
    untracked = seed_ledger.config_source(repo / "configs" / "new.yaml", None)
    assert untracked.uncommitted == ["configs/new.yaml"] and untracked.tree_dirty


def test_w2s_sweep_refuses_a_confirmatory_reuse_before_anything_runs(repo: Path, capsys: pytest.CaptureFixture):
    from w2s.cli.main import main

    project = Project(repo)
    spec = SweepConfig.model_validate({"grid": {"seed": [0, 1, 4]}})
    earlier = seed_ledger.declare(project, spec, expand(spec, repo), None, "sweep-earlier")
    seed_ledger.record(project, earlier)
    ledger = (repo / "results" / "seed-ledger.json").read_bytes()

    assert main(["sweep", "--config", "configs/sweep.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    testbed = next(iter(earlier["seeds"]))
    assert err.count("\n") == 0
    assert err.startswith(
        f"error: confirmatory sweep refused: seed(s) 4 on testbed {testbed} were used by sweep sweep-earlier"
    )
    assert (repo / "results" / "seed-ledger.json").read_bytes() == ledger, "the ledger is unchanged"
    assert not (repo / ".w2s" / "sweeps").exists(), "nothing ran"
    # --exploratory (how a confirmatory sweep is rerun) passes the ledger; the run stops at the
    # preflight's check of the data file this repository lacks, before the ledger is written
    assert main(["sweep", "--config", "configs/sweep.yaml", "--exploratory"]) == 2
    err = capsys.readouterr().err
    assert "refused" not in err and "data/tweets.csv" in err
    assert (repo / "results" / "seed-ledger.json").read_bytes() == ledger

    # fresh seeds pass the check; an uncommitted protocol does not
    (repo / "configs" / "sweep.yaml").write_text(
        (repo / "configs" / "sweep.yaml").read_text().replace("[3, 4]", "[3, 5]")
    )
    assert main(["sweep", "--config", "configs/sweep.yaml"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: confirmatory sweep refused: configs/sweep.yaml not as committed in git (modified or untracked); "
        "commit the declared protocol first"
    )
    spec = SweepConfig.model_validate(yaml.safe_load((repo / "configs" / "sweep.yaml").read_text()))
    _git(repo, "commit", "-qam", "fresh seeds")
    entry = seed_ledger.declare(project, spec, expand(spec, repo), repo / "configs" / "sweep.yaml", "sweep-fresh")
    assert entry["seeds"] == {testbed: [3, 5]} and entry["commit"] == _git(repo, "rev-parse", "HEAD")
    assert entry["confirmatory"] and entry["uncommitted"] == [] and entry["config"] == "configs/sweep.yaml"
    seed_ledger.record(project, entry)
    recorded = json.loads((repo / "results" / "seed-ledger.json").read_text())
    assert [e["sweep"] for e in recorded["sweeps"]] == ["sweep-earlier", "sweep-fresh"]
    with pytest.raises(ConfigError, match="seed\\(s\\) 3, 5 on testbed .* sweep-fresh"):
        seed_ledger.record(project, {**entry, "sweep": "sweep-twice"})  # re-checked under the lock


def test_a_sweep_on_a_bundled_corpus_not_yet_fetched_stops_before_the_ledger_records_its_seeds(
    repo: Path, capsys: pytest.CaptureFixture
):
    from w2s.cli.main import main

    (repo / "configs" / "news.yaml").write_text(
        "base: params.yaml\nconfirmatory: true\noverrides:\n  data: {path: null, name: 20newsgroups-super}\n"
        "grid:\n  seed: [100, 101]\n"
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "news")
    assert main(["sweep", "--config", "configs/news.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: bundled corpus file ") and "w2s data fetch" in err
    assert not (repo / "results" / "seed-ledger.json").exists(), "no seed was spent"
    assert not (repo / ".w2s" / "sweeps").exists(), "nothing ran"


def test_a_stopped_confirmatory_sweep_resumes_under_the_same_protocol_and_under_nothing_else(
    repo: Path, capsys: pytest.CaptureFixture
):
    from w2s.cli.main import main

    project = Project(repo)
    config = repo / "configs" / "sweep.yaml"
    spec = SweepConfig.model_validate(yaml.safe_load(config.read_text()))

    def declare(name: str, sweep: SweepConfig = spec) -> dict:
        return seed_ledger.declare(project, sweep, expand(sweep, repo), config, name)

    first = declare("sweep-first")
    assert first["resumes"] == []
    seed_ledger.record(project, first)  # it started, then was stopped before it finished
    # the same commit, the ledger it wrote not yet committed: a resume
    assert declare("sweep-again")["resumes"] == ["sweep-first"]
    # through `w2s sweep`: past the ledger, to the preflight's check of the data this repo lacks
    assert main(["sweep", "--config", "configs/sweep.yaml"]) == 2
    err = capsys.readouterr().err
    assert "refused" not in err and "data/tweets.csv" in err
    # committing the ledger, stored outputs and docs changes no protocol
    (repo / "README.md").write_text("what the first start showed\n")
    (repo / "results" / "notes.txt").write_text("partial\n")
    _git(repo, "add", "README.md", "results")
    _git(repo, "commit", "-qm", "ledger and notes")
    again = declare("sweep-again")
    assert again["resumes"] == ["sweep-first"]
    seed_ledger.record(project, again)
    assert declare("sweep-third")["resumes"] == ["sweep-first", "sweep-again"]
    assert seed_ledger.run_tags(again)["sweep_resumes"] == "sweep-first"
    # once a start of the protocol has finished, a rerun is a second look at its seeds: refused
    seed_ledger.finish(project, "sweep-again")
    assert json.loads((repo / "results" / "seed-ledger.json").read_text())["sweeps"][1]["finished"]
    with pytest.raises(ConfigError, match=r"seed\(s\) 3, 4 on testbed .* sweep-first"):
        declare("sweep-after-the-end")
    _git(repo, "checkout", "-q", "--", "results/seed-ledger.json")  # back to the unfinished start

    # other seeds from the same file are another protocol: 3 is used
    other = spec.model_copy(update={"grid": {**spec.grid, "seed": [3, 9]}})
    with pytest.raises(ConfigError, match=r"seed\(s\) 3 on testbed .* sweep-first"):
        declare("sweep-other", other)
    # a code change, uncommitted or committed, is another protocol
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "\n")
    (repo / "tool.py").write_text("CHANGED = True\n")
    _git(repo, "add", "tool.py")
    with pytest.raises(ConfigError) as err:
        declare("sweep-changed")
    _git(repo, "commit", "-qam", "a code change")
    with pytest.raises(ConfigError) as err:
        declare("sweep-changed")
    message = str(err.value)
    assert "\n" not in message and "seed(s) 3, 4 on testbed" in message and "sweep-first" in message
    assert message.endswith(
        "or resumes one of the same config and seeds whose commit equals this tree outside results, plots, docs, *.md"
    )
    # an exploratory run of the same seeds is never resumed as confirmatory
    ledger = {"version": 1, "sweeps": [{**first, "confirmatory": False}]}
    assert seed_ledger.resumable(ledger, first, repo) == []
