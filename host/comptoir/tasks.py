"""Background tasks: one protocol (start, stop, health) and one way to stop a thread.

Every task of the daemon runs on its own thread, waits on a `threading.Event` between rounds,
and stops when the event is set: `stop()` sets it and joins the thread (bounded), so whatever
the task was doing is finished, never cut in the middle. The app (comptoir.app) starts and
stops them all; /v1/health and the tests read `health()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Literal, Protocol

log = logging.getLogger("comptoir")

Health = Literal["idle", "running", "stopped", "failed"]
STOP_JOIN_S = 10.0  # what a task may take to finish its round once told to stop


class Task(Protocol):
    name: str

    def start(self) -> None: ...
    def stop(self, wait: bool = True) -> None: ...
    def health(self) -> Health: ...


class ThreadTask:
    """`run(stop)` on a daemon thread of its own, until `stop` is set."""

    def __init__(self, name: str, run: Callable[[threading.Event], None]) -> None:
        self.name = name
        self._run = run
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self._run(self._stop)
        except Exception:
            self._failed = True
            log.exception("background task ended by an error", extra={"task": self.name})

    def stop(self, wait: bool = True) -> None:
        """Tell the task to stop; with `wait`, join it (its round finished)."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join(timeout=STOP_JOIN_S)

    def health(self) -> Health:
        if self._thread is None:
            return "idle"
        if self._thread.is_alive():
            return "running"
        return "failed" if self._failed else "stopped"


def periodic(name: str, every: float, job: Callable[[], None], *, at_start: bool) -> ThreadTask:
    """A task that runs `job` every `every` seconds (first at once when `at_start`, for work
    that was due while the PC was off); an error in a round is logged and the next round
    comes as planned."""

    def run(stop: threading.Event) -> None:
        if not at_start and stop.wait(every):
            return
        while True:
            try:
                job()
            except Exception:
                log.exception("background task round failed", extra={"task": name})
            if stop.wait(every):
                return

    return ThreadTask(name, run)
