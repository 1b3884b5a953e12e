"""The daemon's notion of time, from one place a test can drive.

Everything in the daemon that reads wall time (token validity, list expiry, transaction expiry
and retention, rights ages) or measures a pause on the clock's scale (the rights breaker's cool
down, the trust refresher's schedule) calls `now()` or `monotonic()` here, never `time` itself.

In production the clock is the system's. A test moves it:

* in process: `with clock.use(ManualClock(start)) as c: ...; c.advance(86400)`;
* in a `comptoir run` subprocess: `COMPTOIR_CLOCK_FILE=/path` in its environment; the file
  holds a number of seconds added to the system clock (both wall and monotonic), re-read at
  most every 20 ms, so a test writing 86400 there makes a day pass at once. The variable is
  for tests and benches; the daemon logs a warning at start when it is set.

Only forward moves are meaningful: a monotonic reading never goes back.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

ENV_FILE = "COMPTOIR_CLOCK_FILE"


class Clock(Protocol):
    def time(self) -> float: ...
    def monotonic(self) -> float: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told (wall and monotonic together)."""

    def __init__(self, start: float | None = None) -> None:
        self._wall = time.time() if start is None else float(start)
        self._mono = 1_000_000.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._wall += seconds
            self._mono += seconds


class OffsetClock:
    """The system clock plus an offset a test sets (in process: `advance`)."""

    def __init__(self, offset: float = 0.0) -> None:
        self._offset = offset
        self._lock = threading.Lock()

    def offset(self) -> float:
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._offset += seconds

    def time(self) -> float:
        return time.time() + self.offset()

    def monotonic(self) -> float:
        return time.monotonic() + self.offset()


class FileClock(OffsetClock):
    """The system clock plus the offset written in a file (COMPTOIR_CLOCK_FILE)."""

    REREAD_S = 0.02

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._read_at = -1.0
        self._max = 0.0

    def offset(self) -> float:
        t = time.monotonic()
        with self._lock:
            if t - self._read_at >= self.REREAD_S:
                self._read_at = t
                try:
                    value = float(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    value = self._max
                self._max = max(self._max, value)  # never backwards
            return self._max


def _initial() -> Clock:
    path = os.environ.get(ENV_FILE)
    return FileClock(Path(path)) if path else SystemClock()


_current: Clock = _initial()


def now() -> float:
    """Wall time, seconds since the epoch."""
    return _current.time()


def monotonic() -> float:
    return _current.monotonic()


def current() -> Clock:
    return _current


def is_system() -> bool:
    return isinstance(_current, SystemClock)


@contextlib.contextmanager
def use(clock: Clock) -> Iterator[Clock]:
    """Make `clock` the daemon's clock for the duration (tests)."""
    global _current
    previous, _current = _current, clock
    try:
        yield clock
    finally:
        _current = previous
