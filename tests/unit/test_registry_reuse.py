"""A student's cache key finds its registered version (the lookup behind idempotent, dedupe-on-
unchanged registration), on a real MLflow SQLite registry."""

from __future__ import annotations

import pytest

from w2s.errors import W2SError
from w2s.ops import model_registry, tracking
from w2s.project import Project


def test_a_student_key_finds_its_version_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracking.configure(Project(tmp_path))
    c = tracking.client()
    key_a, key_b = "a" * 64, "b" * 64
    assert model_registry.version_of_student("m", key_a) is None, "no registered model yet"
    c.create_registered_model("m")
    for key in (key_a, key_b, key_a):  # a duplicate from before keys were checked: the first wins
        c.create_model_version("m", "file:///nowhere", tags={model_registry.STUDENT_KEY_TAG: key})
    assert model_registry.version_of_student("m", key_a) == "1"
    assert model_registry.version_of_student("m", key_b) == "2"
    assert model_registry.version_of_student("m", "c" * 64) is None
    with pytest.raises(W2SError, match="not a cache key"):
        model_registry.version_of_student("m", "x' or name='m")  # a key never reaches the filter unchecked

    model_registry.reuse_version("m", "2", "challenger", "run123")
    assert model_registry.alias_version("m", "challenger") == "2"
    assert c.get_model_version("m", "2").tags["last_confirmed_by_run"] == "run123"


def _waits_for_the_lock(project: Project, model: str, action) -> None:
    """Run `action` in a thread while this test holds the model's promotion lock: it must not
    finish until the lock is released (without the lock it would be done in well under 2 s)."""
    import threading

    from w2s.ops.promotion import promotion_lock

    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    with promotion_lock(project, model):
        worker = threading.Thread(target=run)
        worker.start()
        worker.join(2.0)
        assert worker.is_alive(), "it went ahead while a promotion held the lock"
    worker.join(60)
    assert not worker.is_alive() and not errors, errors


def test_registration_and_rollback_hold_the_promotion_lock(tmp_path, monkeypatch):
    from w2s.ops import promotion

    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path)
    tracking.configure(project)
    c = tracking.client()
    c.create_registered_model("m")
    for key in ("a" * 64, "b" * 64):
        c.create_model_version("m", "file:///nowhere", tags={model_registry.STUDENT_KEY_TAG: key})
    c.set_registered_model_alias("m", "champion", "1")
    c.set_model_version_tag("m", "2", promotion.PREVIOUS_TAG, "1")

    def register_again() -> None:  # an unchanged student: its version takes the alias again
        done = model_registry.register_student(
            promotion.promotion_lock(project, "m"),
            "r",
            "run9",
            tmp_path,
            [],
            "b" * 64,
            "m",
            "challenger",
            "champion",
            {},
        )
        assert done.reused and done.version == "2"

    _waits_for_the_lock(project, "m", register_again)
    assert model_registry.alias_version("m", "challenger") == "2"

    c.set_registered_model_alias("m", "champion", "2")
    _waits_for_the_lock(project, "m", lambda: promotion.rollback(project, "m", "champion"))
    assert model_registry.alias_version("m", "champion") == "1"


def test_registering_onto_the_gates_alias_is_refused(tmp_path, monkeypatch):
    import contextlib

    monkeypatch.chdir(tmp_path)
    tracking.configure(Project(tmp_path))
    with pytest.raises(W2SError, match="registration may not move @champion"):
        model_registry.register_student(
            contextlib.nullcontext(), "r", "run", tmp_path, [], "a" * 64, "m", "champion", "champion", {}
        )
    assert model_registry.registered_model("m") is None
