"""The twin runs each board definition: the firmware on the MicroPython unix port reads
the board file as deployed (slimmed, --board-file) and its HELLO names the board and the
capabilities its features promise."""

from __future__ import annotations

import pytest

from comptoir.events import BoardUp
from comptoir_tools import boards as B
from comptoir_tools.hil import TwinTarget

FEATURE_CAPS = {"nfc": "nfc", "camera": "camera", "buzzer": "buzzer", "display": "display"}


@pytest.mark.parametrize("name", B.list_boards())
def test_twin_hello_reports_board_name_and_capabilities(name, tmp_path):
    board = B.load(name)
    # the host link at the board's own rate would make the test slower, not truer:
    # the wire model is exact at any rate; 921600 keeps it quick
    target = TwinTarget(name, workdir=tmp_path, baud=921600)
    try:
        up = target.log.expect(lambda e: isinstance(e, BoardUp), 30)
    finally:
        target.stop()
    assert up.board.name == name
    want = {FEATURE_CAPS[f] for f in board.definition["features"]} | {"led"}
    assert set(up.board.capabilities) == want, up.board
    assert up.board.max_payload == board.definition.get("link", {}).get("max_payload", 4096)
    # the firmware drove the outputs the board file names
    assert any(line.startswith("OUT led_ready") for line in target.firmware.lines)
