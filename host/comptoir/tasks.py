"""Background tasks: one protocol (start, stop, health) and one way to stop a thread.

A task runs on its own thread and is stopped by `stop()`: told (a `threading.Event` set, or for
a job queue an end mark queued after the jobs already given), then joined (bounded), so
whatever the task was doing is finished, never cut in the middle. `ThreadTask` and `periodic`
wait on their Event between rounds; `JobQueue` runs jobs one at a time, in order (a resource
that belongs to one thread, as a sqlite3 connection, or one worker for the network);
`QueueReader` handles what a producer puts on a queue it owns, until the producer's end mark
(the counter screen's reader of the event feed). A reader board's connection
(board_link.BoardConnection) is a `ThreadTask` inside: its port, its link, its reconnect loop.
The app (comptoir.app) starts and stops the daemon's tasks; the tests read `health()`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, Literal, Protocol, TypeVar

log = logging.getLogger("comptoir")
J = TypeVar("J")

Health = Literal["idle", "running", "stopped", "failed"]
STOP_JOIN_S = 10.0  # what a task may take to finish its round once told to stop


class Task(Protocol):
    name: str

    def start(self) -> None: ...
    def stop(self, wait: bool = True) -> None: ...
    def health(self) -> Health: ...


class ThreadTask:
    """`run(stop)` on a daemon thread of its own, until `stop` is set."""

    def __init__(self, name: str, run: Callable[[threading.Event], None],
                 join_s: float = STOP_JOIN_S) -> None:
        self.name = name
        self._run = run
        self._join_s = join_s
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
            self._thread.join(timeout=self._join_s)

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


class QueueReader(Generic[J]):
    """`handle(item)` for each item a producer puts on `source`, one at a time, in order, on a
    thread of its own, until the producer's end mark (None) comes out of the queue. `end()`
    is how the task asks for that mark (the event feed's `unsubscribe` for one of its
    subscriptions; a `JobQueue` queues it itself), so the items already given are handled
    first. An error that escapes `handle` is logged and the next item comes."""

    def __init__(self, name: str, source: queue.Queue[J | None], handle: Callable[[J], None],
                 end: Callable[[], None], join_s: float = STOP_JOIN_S) -> None:
        self.name = name
        self._source = source
        self._handle = handle
        self._end = end
        self._join_s = join_s
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        while (item := self._source.get()) is not None:
            try:
                self._handle(item)
            except Exception:
                log.exception("background job failed", extra={"task": self.name})

    def stop(self, wait: bool = True) -> None:
        """Told (the end mark after the items already given), then joined."""
        self._end()
        if wait and self._thread is not None:
            self._thread.join(timeout=self._join_s)

    def health(self) -> Health:
        if self._thread is None:
            return "idle"
        return "running" if self._thread.is_alive() else "stopped"


class JobQueue(QueueReader[tuple[J]]):
    """`handle(job)` for each job `put`, one at a time, in order, on a thread of its own.
    An error in a job is the handler's to report; one that escapes is logged and the next job
    runs. `stop()`: the jobs already given are done first; then the thread ends."""

    def __init__(self, name: str, handle: Callable[[J], None],
                 join_s: float = STOP_JOIN_S) -> None:
        self._jobs: queue.Queue[tuple[J] | None] = queue.Queue()
        super().__init__(name, self._jobs, lambda item: handle(item[0]), self._end_mark, join_s)

    def put(self, job: J) -> None:
        self._jobs.put((job,))

    def _end_mark(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
