"""Run the firmware by hand on the ESP32 port stand-in (what the twin does for
each board):

    python -m comptoir_tools.simulators.esp32_port --uart host=/dev/pts/N [--board NAME|FILE]
        [--uart pn532=/dev/pts/M] [--board-id HEX] [--pair-key HEX] [--dir DIR]

`--uart host=stdio`: the link on this process's stdin/stdout (the board's LEDs
and messages on stderr). Without --board: a link-only twin board (UART1).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from comptoir_tools.boards import definitions as boards
from comptoir_tools.firmware.build import compile_tree
from comptoir_tools.simulators import esp32_port


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m comptoir_tools.simulators.esp32_port",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uart", action="append", default=[], metavar="ROLE=PATH", required=True)
    ap.add_argument("--board", default=None, help="a board of boards/ or a board file")
    ap.add_argument("--board-id", default="c0a70001")
    ap.add_argument("--pair-key", default=None, help="hex, 32 bytes: a provisioned board")
    ap.add_argument("--heap", default=None,
                    help="the firmware's heap (default 100K, 2M with PSRAM)")
    ap.add_argument("--dir", type=Path, default=None, help="the board's filesystem (kept)")
    args = ap.parse_args(argv)
    from comptoir_tools.twin.twin import MICROPYTHON, twin_definition

    if args.board:
        d = boards.device_definition(boards.load(args.board).definition)
    else:
        d = twin_definition("link", 115200)
    uarts = dict(u.split("=", 1) for u in args.uart)
    base = args.dir or Path(tempfile.mkdtemp(prefix="comptoir-board-"))
    fw = base / "build"
    compile_tree(out=fw)
    flash = esp32_port.deploy(base / "flash", fw, d, board_id=args.board_id,
                              pair_key=bytes.fromhex(args.pair_key) if args.pair_key else None)
    heap = args.heap or ("2M" if "camera" in d else "100K")
    cmd = esp32_port.command(flash, d, uarts, heap=heap, camera=None, micropython=MICROPYTHON)
    print("board filesystem:", flash, file=sys.stderr)
    os.execv(cmd[0], cmd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
