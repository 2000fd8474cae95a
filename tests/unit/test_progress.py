"""The progress helper: a rate-limited line off a terminal (with speed, ETA and a final line), a bar
on one, silence where disabled, and the marker a training rank writes for its launcher."""

from __future__ import annotations

import io

import pytest

from w2s.core.progress import ENV, MARKER, Progress, duration, interval
from w2s.errors import ConfigError


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _training(**kw):
    clock, stream = Clock(), io.StringIO()
    kw = {"every_s": 30.0, "stream": stream, "tty": False, "clock": clock, **kw}
    return Progress("student", "step", kw.pop("total", 400), rate_unit="examples", **kw), clock, stream


def test_off_a_terminal_a_line_at_most_every_interval_with_speed_and_eta_then_a_final_line():
    shown, clock, stream = _training()
    for _ in range(400):  # 4 steps/s of 8 examples: 100 s
        clock.now += 0.25
        shown.update(1, amount=8)
    shown.close()
    assert stream.getvalue().splitlines() == [
        "student: step 120/400 (30%), 32 examples/s, ETA 1m10s",
        "student: step 240/400 (60%), 32 examples/s, ETA 40s",
        "student: step 360/400 (90%), 32 examples/s, ETA 10s",
        "student: step 400/400 (100%), 32 examples/s, done in 1m40s",
    ]
    shown.close()  # idempotent
    assert len(stream.getvalue().splitlines()) == 4


def test_a_resumed_loop_measures_speed_and_eta_from_where_it_resumed():
    shown, clock, stream = _training(initial=100, every_s=0.0)
    for _ in range(20):
        clock.now += 2.0
        shown.update(1, amount=16)
    assert stream.getvalue().splitlines()[-1] == "student: step 120/400 (30%), 8.0 examples/s, ETA 9m20s"


def test_without_a_total_the_count_and_rate_only():
    clock, stream = Clock(), io.StringIO()
    with Progress("predict", "row", every_s=10.0, stream=stream, tty=False, clock=clock) as shown:
        for _ in range(3):
            clock.now += 5.0
            shown.update(500)
    assert stream.getvalue().splitlines() == [
        "predict: 1000 rows, 100 rows/s",
        "predict: 1500 rows, 100 rows/s, done in 15s",
    ]


def test_a_loop_that_fails_writes_no_final_line():
    shown, clock, stream = _training()
    with pytest.raises(RuntimeError), shown:
        shown.update(1, amount=8)
        raise RuntimeError("boom")
    assert stream.getvalue() == ""


def test_a_terminal_gets_a_bar_and_no_lines(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # the suite's conftest silences tqdm
    stream = Terminal()
    with Progress("student", "step", 4, rate_unit="examples", every_s=0.0, stream=stream) as shown:
        for _ in range(4):
            shown.update(1, amount=8)
    text = stream.getvalue()
    assert "\r" in text and "4/4" in text and "examples/s" in text
    assert "ETA" not in text and "done in" not in text


def test_a_disabled_rank_is_silent_and_a_marked_one_writes_lines_even_on_a_terminal():
    stream = Terminal()
    with Progress("r1", "step", 2, every_s=0.0, enabled=False, stream=stream) as shown:
        shown.update()
    assert stream.getvalue() == ""
    with Progress("r0", "step", 2, every_s=0.0, marker=MARKER, stream=stream) as shown:
        shown.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and all(ln.startswith(MARKER + "r0: step ") for ln in lines)


def test_the_interval_comes_from_the_environment_when_set(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert interval(10.0) == 10.0 and interval() == 30.0
    monkeypatch.setenv(ENV, "0.5")
    assert interval(10.0) == 0.5 and Progress("x", stream=io.StringIO(), tty=False).every_s == 0.5
    monkeypatch.setenv(ENV, "soon")
    with pytest.raises(ConfigError, match=ENV):
        interval()


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (0.4, 42, 65, 3599, 7380)] == ["0s", "42s", "1m05s", "59m59s", "2h03m"]
