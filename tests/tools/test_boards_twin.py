"""The twin runs each board definition: the firmware's ESP32 board layer on the port
stand-in reads the board file as deployed (slimmed, /board.json) and its HELLO names
the board and the capabilities its features promise."""

from __future__ import annotations

import pytest

from comptoir.events import BoardUp
from comptoir_tools.boards import definitions as B
from comptoir_tools.boards.hil import TwinTarget

FEATURE_CAPS = {"nfc": "nfc", "camera": "camera", "buzzer": "buzzer", "display": "display"}


@pytest.mark.parametrize("name", B.list_boards())
def test_twin_hello_reports_board_name_and_capabilities(name, tmp_path):
    board = B.load(name)
    # The host link at the board's own rate: on a board whose link is the REPL's
    # UART, the firmware never changes the rate (docs/boards.md), so only that one works.
    target = TwinTarget(name, workdir=tmp_path)
    try:
        up = target.log.expect(lambda e: isinstance(e, BoardUp), 30)
    finally:
        target.stop()
    assert up.board.name == name
    want = {FEATURE_CAPS[f] for f in board.definition["features"]} | {"led"}
    assert set(up.board.capabilities) == want, up.board
    # The largest payload the board receives: 96 on the REPL's UART (its 260-byte ring,
    # docs/boards.md), the board file's max_payload otherwise.
    repl = board.definition["uarts"]["host"].get("repl", False)
    want_rx = 96 if repl else board.definition.get("link", {}).get("max_payload", 4096)
    assert up.board.max_payload == want_rx
    # the firmware drove the outputs the board file names
    assert any(line.startswith("OUT led_ready") for line in target.firmware.lines)
