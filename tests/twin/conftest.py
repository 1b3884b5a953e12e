"""Fixtures for twin tests: the real firmware on MicroPython, the wire model, the daemon."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from comptoir_tools.twin import Twin


class EventLog:
    """Every daemon event, with a way to wait for one."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._cv = threading.Condition()

    def __call__(self, ev: Any) -> None:
        with self._cv:
            self.events.append(ev)
            self._cv.notify_all()

    def wait_for(self, pred: Callable[[Any], bool], timeout: float = 10.0, after: int = 0) -> Any:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for ev in self.events[after:]:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    recent = self.events[after:][-15:]
                    raise AssertionError(f"no matching event in {timeout} s; got {recent}")
                self._cv.wait(left)

    def of(self, kind: type) -> list[Any]:
        with self._cv:
            return [e for e in self.events if isinstance(e, kind)]

    def mark(self) -> int:
        with self._cv:
            return len(self.events)


@pytest.fixture
def twin_factory(tmp_path) -> Iterator[Callable[..., tuple[Twin, EventLog]]]:
    made: list[Twin] = []

    def make(boards: int = 1, **kw: Any) -> tuple[Twin, EventLog]:
        log = EventLog()
        tw = Twin(boards, workdir=tmp_path / f"twin{len(made)}", **kw)
        made.append(tw)
        tw.start()
        assert tw.daemon is not None
        tw.daemon.subscribe(log)
        assert tw.wait_all_up(30), [b.firmware.lines for b in tw.boards]
        return tw, log

    yield make
    for tw in made:
        tw.stop()
