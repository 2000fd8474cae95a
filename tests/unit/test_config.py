from pathlib import Path

import pytest

from w2s.config import Config, load_config, parse_override
from w2s.errors import ConfigError
from w2s.project import Project

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_file_is_valid_and_matches_defaults():
    cfg = load_config(REPO / "params.yaml")
    assert cfg.data.name == "election-tweets"
    assert cfg == Config(), "params.yaml should spell out the defaults, not diverge from them"


def test_overrides_are_parsed_as_yaml():
    cfg = load_config(None, ["strong.epochs=1.5", "data.labels=[a, b]", "registry.enabled=false", "data.path=x.csv"])
    assert cfg.strong.epochs == 1.5
    assert cfg.data.labels == ["a", "b"]
    assert cfg.registry.enabled is False
    assert cfg.data.path == "x.csv"


@pytest.mark.parametrize(
    "override, message",
    [
        ("strong.epochz=1", "unknown config key 'strong.epochz'"),
        ("nonsense=1", "unknown config key 'nonsense'"),
        ("strong.epochs=abc", "config key 'strong.epochs'"),
        ("split.test=10", "split.test=10 is below split.min_test=100"),
        ("weak.kind=svm", "config key 'weak.kind'"),
        ("method=magic", "config key 'method'"),
        ("smooth.mu=1.5", "config key 'smooth.mu'"),
        ("ensemble.members={only: {}}", "ensemble.members needs at least two weak supervisors"),
        ("ensemble.members.x.subset_frac=0", "config key 'ensemble.members.x.subset_frac'"),
        ("split={ood_groups: [x], ood_test: 5}", "split.ood_test=5 is below split.min_test=100"),
    ],
)
def test_bad_keys_and_types_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_config(None, [override])


def test_set_needs_key_value():
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("strong.epochs")


def test_missing_and_malformed_config_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_section_hash_changes_with_any_value():
    a, b = Config(), load_config(None, ["weak.tfidf.C=2"])
    assert a.section_hash("weak") != b.section_hash("weak")
    assert a.section_hash("strong") == b.section_hash("strong")


def test_relative_data_path_may_not_escape_the_project(tmp_path):
    project = Project(tmp_path)
    assert project.resolve_inside("data/x.csv") == tmp_path / "data" / "x.csv"
    with pytest.raises(ConfigError, match="escapes the project"):
        project.resolve_inside("../outside.csv")


def test_a_section_override_merges_into_the_section(tmp_path):
    base = tmp_path / "p.yaml"
    base.write_text("strong:\n  loss: logconf\n  epochs: 3\n")
    cfg = load_config(base, ["strong={epochs: 1, lr: 0.001}"])
    assert (cfg.strong.loss, cfg.strong.epochs, cfg.strong.lr) == ("logconf", 1, 0.001)


def test_a_method_that_cannot_run_in_the_chosen_mode_is_refused_up_front():
    with pytest.raises(ConfigError, match=r"^config: method=perturb perturbs the text"):
        load_config(None, ["method=perturb", "strong.mode=frozen"])


def test_yes_no_on_off_stay_strings_in_set_values_and_config_files(tmp_path):
    # YAML 1.1 (PyYAML's default) reads them as booleans: a label set [no, yes] became [False, True]
    cfg = load_config(None, ["data.labels=[no, yes]", "registry.alias=on"])
    assert cfg.data.labels == ["no", "yes"] and cfg.registry.alias == "on"
    (tmp_path / "c.yaml").write_text("data:\n  labels: [off, on]\nstrong:\n  gradient_checkpointing: true\n")
    cfg = load_config(tmp_path / "c.yaml", ["strong.deepspeed.offload_params=false"])
    assert cfg.data.labels == ["off", "on"] and cfg.strong.gradient_checkpointing is True
    assert load_config(None, ["strong.gradient_checkpointing=yes"]).strong.gradient_checkpointing is True


def test_a_mapping_field_given_on_the_command_line_replaces_its_default_and_a_section_updates():
    params = REPO / "params.yaml"
    assert load_config(params).promotion.floors == {"pgr": 0.0}
    assert load_config(params, ["promotion.floors={}"]).promotion.floors == {}  # a floor can be removed
    assert load_config(params, ["promotion.floors={w2s_acc: 0.5}"]).promotion.floors == {"w2s_acc": 0.5}
    strong = load_config(params, ["strong={lr: 0.001}"]).strong
    assert strong.lr == 0.001 and strong.epochs == load_config(params).strong.epochs  # the rest kept
