"""A circuit breaker: after `threshold` consecutive failed attempts the service is left alone
for `cool_down` seconds (doubling on each failed trial, up to `max_cool_down`); then one trial
call is let through (half-open): success closes the circuit, failure opens it again.

A pharmacy counter must not wait on timeouts patient after patient when the line is down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import StrEnum

from comptoir.clock import monotonic as clock_monotonic


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        threshold: int = 3,
        cool_down: float = 10.0,
        max_cool_down: float = 300.0,
        clock: Callable[[], float] = clock_monotonic,
    ) -> None:
        if threshold < 1 or cool_down <= 0 or max_cool_down < cool_down:
            raise ValueError("bad circuit breaker settings")
        self.threshold = threshold
        self.base_cool_down = cool_down
        self.max_cool_down = max_cool_down
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._cool_down = cool_down
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._cool_down:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one trial at a time."""
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._trial_out:
                self._trial_out = True
                return True
            return False

    def retry_in(self) -> float:
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self._opened_at + self._cool_down - self._clock())

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._cool_down = self.base_cool_down
            self._trial_out = False

    def abandon(self) -> None:
        """A call ended without saying anything about the service (a local error): a trial it
        held is given back, so that the next call can try."""
        with self._lock:
            self._trial_out = False

    def failure(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                # A failed trial: stay away longer.
                self._cool_down = min(self._cool_down * 2, self.max_cool_down)
                self._opened_at = self._clock()
                self._trial_out = False
                return
            self._failures += 1
            if self._failures >= self.threshold:
                self._opened_at = self._clock()
