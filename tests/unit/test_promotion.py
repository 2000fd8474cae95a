"""The gate's decision rules, model references, the promotion config and the prefect.yaml reader
(fast: no training; the end-to-end gate runs in tests/test_retrain.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from w2s.config import load_config
from w2s.errors import ConfigError, W2SError
from w2s.flows.deploy import deployment_spec, schedules
from w2s.ops.model_registry import parse_ref
from w2s.ops.promotion import Decision, check_floors, decide

from conftest import REPO


def _decision(challenger: float | None, champion: float | None, floors: dict, min_margin: float = 0.0) -> Decision:
    margin = None if challenger is None or champion is None else challenger - champion
    return decide(
        Decision(
            model="m",
            challenger="2",
            champion=None if champion is None else "1",
            alias="champion",
            metric="acc",
            challenger_score=challenger,
            champion_score=champion,
            margin=margin,
            min_margin=min_margin,
            floors=floors,
            eval_set={"source": "x", "rows": 10, "md5": "0" * 32},
        )
    )


def test_a_better_challenger_passing_its_floors_is_promoted():
    d = _decision(0.80, 0.75, check_floors({"pgr": 0.4}, {"pgr": 0.2}), min_margin=0.01)
    assert d.promoted and d.reasons == ["acc 0.8000 vs champion 0.7500: margin +0.0500 ≥ 0.01"]


def test_a_margin_below_the_minimum_is_rejected_even_when_better():
    d = _decision(0.755, 0.75, {}, min_margin=0.01)
    assert not d.promoted and "margin +0.0050 < 0.01" in d.reasons[0]


def test_an_undefined_pgr_fails_its_floor_even_without_a_champion():
    floors = check_floors({"w2s_acc": 0.8}, {"pgr": 0.0})  # PGR is not logged when ceiling <= weak
    d = _decision(0.80, None, floors)
    assert not d.promoted and d.reasons == ["floor pgr ≥ 0.0 failed (undefined)"]


def test_the_first_champion_needs_only_its_floors():
    d = _decision(0.60, None, check_floors({"pgr": 0.1}, {"pgr": 0.0}))
    assert d.promoted and d.reasons == ["no champion yet; every floor passed"]


def test_every_failed_check_is_reported():
    d = _decision(0.70, 0.75, check_floors({"pgr": -0.2, "w2s_acc": 0.7}, {"pgr": 0.0, "w2s_acc": 0.8}))
    assert not d.promoted and len(d.reasons) == 3
    assert "REJECTED" in d.markdown() and "floor: pgr" in d.markdown()


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("w2s-strong/7", ("w2s-strong", "7", None)),
        ("w2s-strong@champion", ("w2s-strong", None, "champion")),
        ("models:/w2s-strong/7", ("w2s-strong", "7", None)),
        ("team/w2s@champion", ("team/w2s", None, "champion")),
    ],
)
def test_model_references_parse(ref, expected):
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["w2s-strong", "w2s-strong/latest", "@champion", "w2s/"])
def test_a_malformed_model_reference_is_one_clear_error(ref):
    with pytest.raises(W2SError, match="is not <name>/<version> or <name>@<alias>"):
        parse_ref(ref)


def test_a_floor_on_an_unknown_metric_is_a_config_error():
    with pytest.raises(ConfigError, match="promotion.floors names unknown metric 'pgrr'"):
        load_config(None, ["promotion.floors={pgrr: 0.1}"])
    with pytest.raises(ConfigError, match="promotion.metric"):
        load_config(None, ["promotion.metric=f1"])


def test_w2s_init_writes_the_shipped_prefect_yaml():
    from w2s.flows.deploy import prefect_yaml

    assert prefect_yaml() == (REPO / "prefect.yaml").read_text()


def test_the_shipped_prefect_yaml_declares_a_weekly_cron_retrain():
    spec = deployment_spec(REPO / "prefect.yaml", "w2s-retrain")
    (cron,) = schedules(spec)
    assert cron.cron == "0 3 * * 1" and cron.timezone == "UTC" and cron.active
    assert spec["entrypoint"] == "w2s.flows.retrain:retrain" and spec["work_pool"]["name"] == "w2s-pool"
    from prefect.utilities.importtools import import_object

    assert import_object(spec["entrypoint"]).name == "w2s-retrain", "Prefect loads the flow the entrypoint names"


def test_prefect_yaml_errors_name_the_file_and_the_problem(tmp_path: Path):
    bad = tmp_path / "prefect.yaml"
    bad.write_text("deployments:\n  - name: other\n    entrypoint: flows/pipeline.py:pipeline\n")
    with pytest.raises(ConfigError, match="declares no deployment 'w2s-retrain' \\(it has: other\\)"):
        deployment_spec(bad, "w2s-retrain")
    with pytest.raises(ConfigError, match="entrypoint 'flows/pipeline.py:pipeline' is not one of"):
        deployment_spec(bad, "other")
    bad.write_text("deployments:\n  - name: r\n    entrypoint: flows/retrain.py:retrain\n    schedules: [{x: 1}]\n")
    with pytest.raises(ConfigError, match="a schedule needs cron, interval or rrule"):
        schedules(deployment_spec(bad, "r"))


def test_too_few_untrained_evaluation_rows_reject_without_comparing():
    d = decide(
        Decision(
            model="m",
            challenger="2",
            champion="1",
            alias="champion",
            metric="acc",
            challenger_score=None,  # not scored: too few rows were left
            champion_score=None,
            margin=None,
            min_margin=0.0,
            floors={},
            eval_set={"source": "x", "rows": 40, "md5": "0" * 32, "excluded_trained_rows": 960},
            min_eval_rows=100,
        )
    )
    assert not d.promoted
    assert d.reasons == [
        "only 40 evaluation rows are left once the 960 that either model trained on are removed "
        "(promotion.min_eval_rows: 100)"
    ]


def test_an_unchanged_retrain_says_so_in_every_report():
    d = Decision(
        model="m",
        challenger="2",
        champion="2",
        alias="champion",
        metric="acc",
        challenger_score=None,
        champion_score=None,
        margin=None,
        min_margin=0.0,
        floors={},
        eval_set={"source": "none", "rows": 0, "md5": ""},
        reasons=["nothing to gate"],
        unchanged=True,
    )
    assert d.summary() == "m/2 unchanged: nothing to gate" and "**UNCHANGED**" in d.markdown()
