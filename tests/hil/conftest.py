"""The hardware-in-loop bench: the link scenarios against a real reader board when one is
given, against the twin otherwise; hardware-only tests (marker `hil`) skip without one.

    pytest tests/hil --board-port /dev/ttyUSB0 --board esp32-cam-ai-thinker
    make hil PORT=/dev/ttyUSB0 BOARD=esp32-cam-ai-thinker

The board must have been flashed and paired first (`comptoir flash`); --paired-dir
says where its pairing key is, when not in ~/.config/comptoir/boards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from comptoir_tools.boards import definitions as B
from comptoir_tools.boards.hil import SerialTarget, Target, TwinTarget, add_pytest_options

DEFAULT_TWIN_BOARD = "devkitc-pn532-spi"
NO_BOARD = ("no reader board attached: run with --board-port /dev/ttyUSB0 --board NAME "
            "(make hil PORT=/dev/ttyUSB0 BOARD=NAME)")


def pytest_addoption(parser: pytest.Parser) -> None:
    # Registered here for `pytest tests/hil ...`; a root tests/conftest.py may register
    # them too (for `pytest tests --board-port ...`), in which case this is a no-op.
    with contextlib.suppress(ValueError):
        add_pytest_options(parser)


def _opt(config: pytest.Config, name: str) -> str | None:
    # getoption with a default: when this conftest is loaded late (a run over tests/
    # without a root conftest registering the options), they are simply absent.
    value = config.getoption(name, default=None)
    return str(value) if value else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _opt(config, "board_port"):
        return
    skip = pytest.mark.skip(reason=NO_BOARD)
    for item in items:
        if item.get_closest_marker("hil") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def board_port(pytestconfig: pytest.Config) -> str | None:
    return _opt(pytestconfig, "board_port")


@pytest.fixture(scope="session")
def board_name(pytestconfig: pytest.Config, board_port: str | None) -> str:
    name = _opt(pytestconfig, "board")
    if board_port and not name:
        raise pytest.UsageError("--board-port needs --board NAME (the board definition), one of "
                                + ", ".join(B.list_boards()))
    return name or DEFAULT_TWIN_BOARD


@pytest.fixture(scope="module")
def target(pytestconfig: pytest.Config, board_port: str | None, board_name: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The device under test, with the daemon serving it; one per test module."""
    if board_port:
        paired = _opt(pytestconfig, "paired_dir")
        t: Target = SerialTarget(board_name, board_port, heartbeat_ms=100,
                                 paired_dir=Path(paired) if paired else None)
    else:
        t = TwinTarget(board_name, workdir=tmp_path_factory.mktemp("hil-twin"),
                       heartbeat_ms=100)
    try:
        yield t
    finally:
        t.stop()
