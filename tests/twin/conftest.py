"""Fixtures for twin tests: the real firmware on MicroPython, the wire model, the daemon.
Events are kept by the bench's EventLog (comptoir_tools.boards.hil): the same tests read
them on the twin and on a real board."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from comptoir_tools.boards.hil import EventLog
from comptoir_tools.twin.twin import Twin


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
