"""Progress of a long loop (training steps, predicted rows): a live bar on a terminal, else a line on
stderr at a bounded rate, so CI and scheduled workers' logs show that work is moving.

Off a terminal a line such as

    strong-w2s: step 120/400 (30%), 85 examples/s, ETA 1m05s

is written at most once every `every_s` seconds (`12000 rows, 480 rows/s` when the total is
unknown), and a final `..., done in 4m42s` line when the loop ends without an error.

`W2S_PROGRESS_SECONDS` sets that interval for every loop that does not pass its own (training: 30 s,
`w2s predict`: 10 s); `0` writes a line at every update. A training rank started by the DeepSpeed
launch writes its lines behind `MARKER`; the launching process finds the marker anywhere in a line
(launchers may prefix their children's output), strips it and forwards the rest to its own stderr.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

from w2s.errors import ConfigError

ENV = "W2S_PROGRESS_SECONDS"
TRAIN_EVERY_S = 30.0
MARKER = "@w2s-progress@ "


def interval(default: float = TRAIN_EVERY_S) -> float:
    """Seconds between progress lines off a terminal: `W2S_PROGRESS_SECONDS` if set, else `default`."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{ENV} must be a number of seconds >= 0, got {raw!r}")
    return value


def duration(seconds: float) -> str:
    """A short human duration: `42s`, `1m05s`, `2h03m`."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


class Progress:
    """Count a loop's progress and show it: `update()` per step, `close()` (or a `with` block) at the end.

    `unit` is the singular name of what `update(n)` counts (`step`, `row`); `rate_unit` is what the
    speed is reported in when that differs (training counts steps but reports examples/s: pass
    `update(1, amount=len(batch))`). `initial` is where a resumed loop starts (excluded from the
    speed and the ETA). `enabled=False` makes it silent (e.g. every rank but the first). `marker`
    prefixes every line and implies line mode (a rank's stderr is a pipe to its launcher). `clock`
    and `tty` are injectable for tests.
    """

    def __init__(
        self,
        what: str,
        unit: str = "step",
        total: int | None = None,
        *,
        rate_unit: str | None = None,
        every_s: float | None = None,
        initial: int = 0,
        enabled: bool = True,
        marker: str = "",
        leave: bool = True,
        stream: IO[str] | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.unit, self.total = what, unit, total
        self.rate_unit = rate_unit or f"{unit}s"
        self.every_s = interval() if every_s is None else every_s
        self.initial = self.done = initial
        self.amount = 0
        self.enabled, self.marker = enabled, marker
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.start = self.last = clock()
        self.closed = False
        self.bar: Any = None
        if tty is None:
            tty = not marker and _isatty(self.stream)
        if enabled and tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=what, unit=unit, leave=leave, file=self.stream)

    def update(self, n: int = 1, amount: int | None = None) -> None:
        """`n` more units done (`amount` more of `rate_unit`, default `n`); maybe write a line."""
        self.done += n
        self.amount += n if amount is None else amount
        if not self.enabled:
            return
        now = self.clock()
        if self.bar is not None:
            self.bar.update(n)
            if self.rate_unit != f"{self.unit}s":  # the bar shows units/s itself; add the other rate
                self.bar.set_postfix_str(f"{_rate(self._speed(now))} {self.rate_unit}/s", refresh=False)
        elif now - self.last >= self.every_s:
            self.last = now
            self._write(self.line(now))

    def close(self, finished: bool = True) -> None:
        """End the display: close the bar, or (off a terminal, if `finished`) write the final line."""
        if self.closed or not self.enabled:
            self.closed = True
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        elif finished:
            self._write(self.line(self.clock(), final=True))

    def line(self, now: float, final: bool = False) -> str:
        """The progress line as of `now` (a time from the same clock)."""
        if self.total:
            count = f"{self.unit} {self.done}/{self.total} ({100 * self.done // self.total}%)"
        else:
            count = f"{self.done} {self.unit}s"
        parts = [count, f"{_rate(self._speed(now))} {self.rate_unit}/s"]
        steps_per_s = (self.done - self.initial) / max(now - self.start, 1e-9)
        if final:
            parts.append(f"done in {duration(now - self.start)}")
        elif self.total and self.done > self.initial and self.done < self.total:
            parts.append(f"ETA {duration((self.total - self.done) / steps_per_s)}")
        return f"{self.what}: {', '.join(parts)}"

    def _speed(self, now: float) -> float:
        return self.amount / max(now - self.start, 1e-9)

    def _write(self, line: str) -> None:
        print(f"{self.marker}{line}", file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(finished=exc_type is None)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False
