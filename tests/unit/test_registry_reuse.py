"""A student's cache key finds its registered version (the lookup behind idempotent, dedupe-on-
unchanged registration), on a real MLflow SQLite registry."""

from __future__ import annotations

import pytest

from w2s.errors import W2SError
from w2s.ops import registry, tracking
from w2s.project import Project


def test_a_student_key_finds_its_version_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracking.configure(Project(tmp_path))
    c = tracking.client()
    key_a, key_b = "a" * 64, "b" * 64
    assert registry.version_of_student("m", key_a) is None, "no registered model yet"
    c.create_registered_model("m")
    for key in (key_a, key_b, key_a):  # a duplicate from before keys were checked: the first wins
        c.create_model_version("m", "file:///nowhere", tags={registry.STUDENT_KEY_TAG: key})
    assert registry.version_of_student("m", key_a) == "1"
    assert registry.version_of_student("m", key_b) == "2"
    assert registry.version_of_student("m", "c" * 64) is None
    with pytest.raises(W2SError, match="not a cache key"):
        registry.version_of_student("m", "x' or name='m")  # a key never reaches the filter unchecked

    registry.reuse_version("m", "2", "challenger", "run123")
    assert registry.alias_version("m", "challenger") == "2"
    assert c.get_model_version("m", "2").tags["last_confirmed_by_run"] == "run123"
