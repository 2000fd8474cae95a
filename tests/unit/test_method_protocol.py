"""The method protocol and registry: the config's choices and sections come from the registry,
a method's hooks are the only place its behaviour lives, and the documented example works."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from w2s.config import Config, load_config
from w2s.core.refs import LabelsRef, ModelRef
from w2s.errors import ConfigError
from w2s.methods import all_methods, get
from w2s.methods.base import Method, RefineInputs, RefiningMethod, Supervision

REPO = Path(__file__).resolve().parents[2]
BUILT_IN = {
    "naive",
    "hardened",
    "bootstrap",
    "confidence",
    "selective",
    "smooth",
    "ensemble",
    "corrector",
    "contrastive",
    "perturb",
}


def test_the_config_offers_exactly_the_registered_methods_and_their_sections():
    methods = all_methods()
    assert set(methods) == BUILT_IN and next(iter(methods)) == "naive"
    assert set(Config.model_fields["method"].annotation.__args__) == set(methods)
    for name, method in methods.items():
        assert method.name == name and method.summary
        if method.Settings is not None:
            assert Config.model_fields[name].annotation is method.Settings
            assert isinstance(Config().section(name), method.Settings)
        for section in method.reads:
            assert section in Config.model_fields, f"{name} reads an unknown section '{section}'"
    help_text = Config.model_fields["method"].description
    assert all(f"{name}: " in help_text for name in methods)


def test_an_unknown_method_or_a_config_a_method_refuses_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match=r"config key 'method': Input should be 'naive', 'bootstrap'"):
        load_config(None, ["method=nope"])
    with pytest.raises(ConfigError, match="method=perturb perturbs the text, so it needs strong.mode=finetune"):
        load_config(None, ["method=perturb", "strong.mode=frozen"])
    with pytest.raises(KeyError, match="unknown method 'nope'"):
        get("nope")


def test_cache_key_sections_follow_the_method():
    cfg = load_config(None, ["method=selective", "smooth.k=7"])
    spec = get("selective")(cfg).label_spec()
    assert spec["method"] == "selective" and spec["smooth"]["k"] == 7 and "selective" in spec
    assert set(get("confidence")(cfg).label_spec()) == {"method", "selective", "smooth"}
    assert get("naive")(cfg).objective() == {} and get("smooth")(cfg).objective() == {}
    ens = load_config(None, ["method=ensemble"])
    assert get("ensemble")(ens).objective()["ensemble"]["lr"] == ens.section("ensemble").lr
    assert [w.kind for w in get("ensemble")(ens).weak_models()] == ["tfidf", "encoder", "tfidf"]


def _labels(path: str = "labels.parquet") -> LabelsRef:
    return LabelsRef(
        path, "0" * 32, ["a", "b"], {"kind": "tfidf", "cache_key": "k"}, "d", "s", {"transfer": 2, "val": 1}
    )


class _Env:
    """A stand-in pipeline that records what a method asked of it."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.weak = ModelRef("weak", "/w", "weakkey", False, {})
        self.weak_labels = _labels()
        self.calls: list[tuple[str, object]] = []

    def refine(self, method: RefiningMethod) -> ModelRef:
        self.calls.append(("refine", method.name))
        return ModelRef("refined", "/r", "refinedkey" * 2, False, {"self_label_frac": 0.25})

    def train_student(self, cfg: Config, labels: LabelsRef, folds: int = 1) -> ModelRef:
        self.calls.append(("student", cfg.strong.num_layers, folds))
        return ModelRef("w2s", "/s", f"student{cfg.strong.num_layers}" * 3, False, {})

    def publish(self, supervisor: ModelRef, name: str) -> LabelsRef:
        self.calls.append(("publish", name))
        return _labels(f"{name}.parquet")


def test_supervise_passes_through_refines_or_chains_as_the_method_says():
    cfg = load_config(None, ["bootstrap.intermediate_layers=[1, 2]"])
    env = _Env(cfg)
    assert get("naive")(cfg).supervise(env) == Supervision(env.weak_labels) and env.calls == []

    sup = get("selective")(cfg).supervise(env)
    assert env.calls == [("refine", "selective"), ("publish", "refinedkeyrefine-selective")]
    assert sup.refined is not None and sup.labels.path == "refinedkeyrefine-selective.parquet"
    assert get("selective")(cfg).metrics(sup, {}) == {"self_label_frac": 0.25}

    env.calls.clear()
    chain = get("bootstrap")(cfg).supervise(env)
    assert [c for c in env.calls if c[0] == "student"] == [("student", 1, 2), ("student", 2, 2)], "cross-fitted"
    env.calls.clear()
    in_sample = load_config(None, ["bootstrap.intermediate_layers=[1]", "bootstrap.cross_fit_folds=1"])
    get("bootstrap")(in_sample).supervise(env)
    assert [c for c in env.calls if c[0] == "student"] == [("student", 1, 1)]
    assert len(chain.chain) == 2 and chain.labels == chain.chain[-1][1] and chain.refined is None


def _documented_method() -> type[Method]:
    """The example module of docs/methods.md ("Adding a method"), executed as written."""
    text = (REPO / "docs" / "methods.md").read_text()
    code = re.search(r"### Adding a method.*?```python\n(.*?)```", text, re.S).group(1)
    module = types.ModuleType("hardened_example")
    exec(compile(code, "docs/methods.md", "exec"), module.__dict__)  # noqa: S102 - our own docs
    return module.METHOD


def test_the_documented_example_method_is_a_working_method():
    method = _documented_method()
    assert issubclass(method, RefiningMethod) and method.name == "hardened"
    splits = pd.DataFrame(
        {
            "id": ["t", "u", "v"],
            "text": ["x", "y", "z"],
            "label": ["a", None, None],
            "split": ["weak_train", "transfer", "val"],
        }
    )
    weak = np.array([[0.7, 0.3], [0.4, 0.6]])
    inp = RefineInputs(
        splits,
        ["a", "b"],
        load_config(None),
        weak,
        splits.iloc[1:].reset_index(drop=True),
        lambda ids: np.zeros((len(ids), 2)),
        lambda w, s: (weak, None),
    )
    cfg = load_config(None)
    hard = type("Default", (method,), {"settings": property(lambda self: method.Settings())})(cfg).refine(inp)
    assert np.array_equal(hard.probs, [[1.0, 0.0], [0.0, 1.0]])

    class Tempered(method):  # as if `hardened.temperature=0.5` were set in the composed config
        @property
        def settings(self):
            return method.Settings(temperature=0.5)

    soft = Tempered(cfg).refine(inp).probs
    assert soft[0, 0] == pytest.approx(0.49 / 0.58) and np.allclose(soft.sum(1), 1.0)
