"""Sweeps through the real flow: aggregation and shared work, the seed ledger's record of a
confirmatory sweep (and its refusal of the same seeds next time), the raw outputs stored with DVC
and the tables regenerated from them on a fresh clone, and points on a local Dask cluster."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from conftest import make_project

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Swept:
    """The tiny sweep config, marked confirmatory and committed, run once through `w2s sweep`,
    its raw outputs stored as results/tiny (`--store tiny`)."""

    root: Path
    code: int
    out: str
    head: str  # the project's commit the sweep ran from

    @property
    def sweep_dir(self) -> Path:
        return next((self.root / ".w2s" / "sweeps").iterdir())

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(f"sqlite:///{self.root / '.w2s' / 'mlflow.db'}")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, bundled_dir: Path, tiny_run) -> Swept:
    from w2s.cli.main import main
    from w2s.ops.scaffold import commit

    root = make_project(tmp_path_factory.mktemp("swept") / "proj", bundled_dir, warm=tiny_run.cache)
    (root / "sweep.yaml").write_text((REPO / "configs" / "sweep-tiny.yaml").read_text() + "confirmatory: true\n")
    commit(root, "the declared protocol")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.chdir(root)
        code = main(["sweep", "--config", "sweep.yaml", "--store", "tiny"])
    return Swept(root, code, out.getvalue(), _git(root, "rev-parse", "HEAD"))


def test_sweep_flow_runs_aggregates_and_reuses_shared_work(swept: Swept):
    assert swept.code == 0
    assert "| strong.loss | seeds | weak acc |" in swept.out

    sweep_dir = swept.sweep_dir
    rows = json.loads((sweep_dir / "points.json").read_text())
    assert len(rows) == 4
    # the second method of each seed reuses that seed's weak model and ceiling
    for row in rows:
        if row["strong.loss"] == "logconf":
            assert row["reused"]["weak"] and row["reused"]["ceiling"] and not row["reused"]["w2s"]
    table = json.loads((sweep_dir / "results.json").read_text())
    assert [r["strong.loss"] for r in table] == ["xent", "logconf"]
    assert all(r["seeds"] == [0, 1] for r in table)
    assert (sweep_dir / "pgr.png").stat().st_size > 1000
    assert (sweep_dir / "results.csv").read_text().startswith("strong.loss,seeds,")

    # logconf against xent, paired by seed: the mean of the per-seed differences, on both seeds
    by = {(r["strong.loss"], r["seed"]): r["w2s_acc"] for r in rows}
    logconf = table[1]
    assert logconf["diff_w2s_acc_n"] == 2 and not logconf["diff_w2s_acc_claim"], "2 seeds support no claim"
    expected = sum(by[("logconf", s)] - by[("xent", s)] for s in (0, 1)) / 2
    assert logconf["diff_w2s_acc_mean"] == pytest.approx(expected)
    assert logconf["diff_w2s_acc_p_holm"] == pytest.approx(logconf["diff_w2s_acc_p"]), "one comparison"
    assert "Paired differences to strong.loss=xent:" in (sweep_dir / "results.md").read_text()
    # each point kept its per-row test correctness (a raw output the store keeps)
    correct = pd.read_parquet(sweep_dir / f"point-{rows[0]['point']:03d}" / "test_correct.parquet")
    assert list(correct.columns) == ["id", "weak", "w2s", "ceiling"] and len(correct) == 120
    assert correct["w2s"].mean() == pytest.approx(rows[0]["w2s_acc"])
    for r in table:
        assert r["pgr"] is None or r["pgr_lo"] is None or r["pgr_lo"] <= r["pgr_hi"]

    client = swept.client()
    parents = client.search_runs(client.get_experiment_by_name("w2s").experiment_id, "tags.method = 'sweep'")
    assert len(parents) == 1
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"results.csv", "results.md", "pgr.png", "points.json"} <= artifacts
    children = client.search_runs(
        [parents[0].info.experiment_id], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'"
    )
    assert len(children) == 4


def test_a_confirmatory_sweep_records_its_commit_and_its_seeds_are_refused_next_time(swept: Swept, capsys):
    from w2s.cli.main import main

    ledger_file = swept.root / "results" / "seed-ledger.json"
    (entry,) = json.loads(ledger_file.read_text())["sweeps"]
    (testbed,) = entry["seeds"]
    assert entry["sweep"] == swept.sweep_dir.name and entry["confirmatory"] is True
    assert entry["config"] == "sweep.yaml" and entry["commit"] == swept.head and entry["uncommitted"] == []
    assert entry["seeds"] == {testbed: [0, 1]} and testbed.startswith("election-tweets@")
    assert entry["finished"] >= entry["date"], "stamped when its report was written: resumed no more"
    record = json.loads((swept.sweep_dir / "sweep.json").read_text())
    assert record["commit"] == swept.head and record["group_keys"] == ["strong.loss"]
    tags = (
        swept.client()
        .search_runs(swept.client().get_experiment_by_name("w2s").experiment_id, "tags.method = 'sweep'")[0]
        .data.tags
    )
    assert tags["sweep_config_commit"] == swept.head and tags["sweep_confirmatory"] == "true"
    assert json.loads(tags["sweep_seeds"]) == {testbed: [0, 1]}

    # the same declared sweep again: its seeds are no longer fresh on that testbed
    before = ledger_file.read_bytes()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(swept.root)
        assert main(["sweep", "--config", "sweep.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: confirmatory sweep refused: seed(s) 0, 1 on testbed {testbed} were used by sweep "
        f"{entry['sweep']} (sweep.yaml, confirmatory, {entry['date'][:10]}); a confirmatory sweep needs "
        "seeds no earlier sweep used on its testbed (results/seed-ledger.json), or resumes one of the same "
        "config and seeds whose commit equals this tree outside results, plots, docs, *.md"
    )
    assert ledger_file.read_bytes() == before
    assert len(list((swept.root / ".w2s" / "sweeps").iterdir())) == 1, "nothing ran"


DOC = """# Results

<!-- results:tiny sweep -->
<!-- /results -->

<!-- results:tiny configurations -->
<!-- /results -->

Between the tables, prose stays as written.

<!-- results:tiny differences -->
<!-- /results -->

<!-- results:tiny within -->
<!-- /results -->
"""


def test_stored_raw_outputs_regenerate_the_tables_on_a_fresh_clone(swept: Swept, tmp_path: Path, capsys):
    from w2s.cli.main import main
    from w2s.ops.scaffold import commit

    root = swept.root
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "results.md").write_text(DOC)
    assert "raw outputs stored in results/tiny" in swept.out and (root / "results" / "tiny.dvc").is_file()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert main(["results", "store", str(swept.sweep_dir), "tiny"]) == 2, "a stored sweep is never replaced"
        assert main(["results", "store", str(swept.sweep_dir), "tiny-copy"]) == 0
        assert main(["results", "check"]) == 1, "empty blocks differ"
        assert main(["results", "write"]) == 0
        assert main(["results", "check"]) == 0
    capsys.readouterr()
    doc = (root / "docs" / "results.md").read_text()
    assert "Between the tables, prose stays as written." in doc
    assert f"`sweep.yaml` at commit `{swept.head[:10]}`" in doc and "(confirmatory)" in doc
    assert "| strong.loss | seeds | weak acc |" in doc and "| logconf |" in doc
    assert "Holm-adjusted over the 1 comparison of this table" in doc and "p, Holm (1)" in doc
    # the default DVC remote stays the project's; the stored outputs went to the in-repo one
    assert "remote = local" in (root / ".dvc" / "config").read_text()
    assert any((root / "results" / "dvc-store" / "files" / "md5").rglob("*.dir"))

    commit(root, "stored sweep and its tables")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    assert not (clone / "results" / "tiny").exists() and not (clone / ".dvc" / "cache").exists()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(clone)
        assert main(["results", "check"]) == 0, "pulled from the remote inside the repository"
        assert (clone / "results" / "tiny" / "points.json").is_file()
        doc = clone / "docs" / "results.md"
        doc.write_text(doc.read_text().replace("| logconf |", "| logconf  |", 1))  # the first table only
        capsys.readouterr()
        assert main(["results", "check"]) == 1
        err = capsys.readouterr().err
        line = doc.read_text().splitlines().index("<!-- results:tiny configurations -->") + 1
        assert f"docs/results.md: results:tiny configurations (line {line}) differs from its stored outputs" in err
        assert err.count("differs from its stored outputs") == 1, "only the edited block"


def test_sweep_points_run_on_a_local_dask_cluster(warm_project, capsys):
    from w2s.cli.main import main

    project = warm_project
    # one point, the logconf student, which the session's cache does not hold
    spec = (REPO / "configs" / "sweep-tiny.yaml").read_text().replace("seed: [0, 1]", "seed: [0]")
    spec = spec.replace("strong.loss: [xent, logconf]", "strong.loss: [logconf]").replace(
        "baseline: {strong.loss: xent}", ""
    )
    (project / "sweep.yaml").write_text(spec + "runner: dask\nmax_workers: 1\n")
    assert main(["sweep", "--config", "sweep.yaml"]) == 0
    assert "| strong.loss | seeds | weak acc |" in capsys.readouterr().out
    sweep_dir = next((project / ".w2s" / "sweeps").iterdir())
    rows = json.loads((sweep_dir / "points.json").read_text())
    assert [r["strong.loss"] for r in rows] == ["logconf"]
    # the Dask worker is another process: it read the weak model and the ceiling from the
    # project's cache, and trained the new student there
    assert rows[0]["reused"]["weak"] and rows[0]["reused"]["ceiling"] and not rows[0]["reused"]["w2s"]
