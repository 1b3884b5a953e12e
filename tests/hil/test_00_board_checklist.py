"""First on a real board (`make hil`): the checklist of what the twin's ESP32 port
stand-in assumes, run at the board's REPL (comptoir_tools.boards.hil_checklist). Skipped
without a board; resets the board back into Comptoir at the end."""

from __future__ import annotations

import pytest

from comptoir_tools.boards import hil_checklist


@pytest.mark.hil
def test_board_checklist(board_port: str, board_name: str, pytestconfig) -> None:
    repl = pytestconfig.getoption("repl_port", default=None) or board_port
    checks = hil_checklist.run(board_name, board_port, repl)
    print()
    for c in checks:
        print(f"- {c.name}\n    twin assumes: {c.twin_assumes}\n    board says:   {c.board_says}")
    assert checks and all(c.board_says and not c.board_says.startswith("no ")
                          for c in checks), checks
