"""`comptoir twin` / `make run`: the whole terminal as a software twin, live.

Starts simulated reader boards (the real firmware on MicroPython behind the
wire model) and the real daemon, then prints what happens: boards saying HELLO,
their status (free heap, link counters), and a scripted demonstration of the
link surviving line noise, a cut cable and a board losing power.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from typing import Any

from comptoir import logs
from comptoir.daemon import parse_status
from comptoir.events import BoardDown, BoardUp, LinkError, Message, PortLost
from comptoir_link import frames as F
from comptoir_tools.twin import Twin


class Terminal:
    def __init__(self, twin: Twin, out: Any = sys.stdout) -> None:
        self.twin = twin
        self.out = out
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self.names = {b.port: f"board{b.index}" for b in twin.boards}
        self.quiet = False

    def say(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            print(f"[{time.monotonic() - self.t0:7.2f}s] {text}", file=self.out, flush=True)

    def on_event(self, ev: Any) -> None:
        name = self.names.get(getattr(ev, "port", ""), "?")
        if isinstance(ev, BoardUp):
            b = ev.board
            self.say(f"{name}: UP  id {b.board_id}  firmware {b.firmware}  "
                     f"'{b.name}'  max frame {b.max_payload} B  caps {','.join(b.capabilities)}")
        elif isinstance(ev, BoardDown):
            self.say(f"{name}: DOWN ({ev.reason})")
        elif isinstance(ev, PortLost):
            self.say(f"{name}: serial port lost ({ev.error})")
        elif isinstance(ev, LinkError):
            self.say(f"{name}: link error counted: {ev.counter} ({ev.detail})")
        elif isinstance(ev, Message) and ev.ftype == F.STATUS:
            st = parse_status(ev.payload)
            self.say(f"{name}: status  free heap {st['free_heap']} B (lowest "
                     f"{st['min_free_heap']} B)  uptime {st['uptime_ms'] / 1000:.0f}s  "
                     f"crc errors {st['crc_errors']}  retransmits {st['retransmits']}  "
                     f"sessions {st['sessions']}")
        elif isinstance(ev, Message) and ev.ftype == F.BENCH_DONE:
            self.say(f"{name}: received a burst of large frames intact")


def _demo(twin: Twin, term: Terminal, stop: threading.Event) -> None:
    assert twin.daemon is not None
    steps = itertools.cycle(["status", "noise", "status", "burst", "cut", "status", "power"])
    while not stop.wait(4.0):
        step = next(steps)
        board = twin.boards[0] if step in ("cut", "power") else twin.boards[-1]
        name = f"board{board.index}"
        if step == "status":
            for b in twin.boards:
                twin.daemon.send(b.port, F.STATUS_REQUEST)
        elif step == "noise":
            term.say(f"demo: injecting 64 bytes of line noise towards the host on {name}")
            board.wire.inject_garbage("a2b", 64)
        elif step == "burst":
            term.say(f"demo: {name} sends 4 frames of 4 kB")
            twin.daemon.send(board.port, F.BENCH_REQUEST, (4).to_bytes(2, "little")
                             + (4096).to_bytes(2, "little"))
        elif step == "cut":
            term.say(f"demo: cutting {name}'s cable for 6 s")
            board.wire.cut_for(6.0)
        elif step == "power":
            term.say(f"demo: {name} loses power and boots again")
            board.firmware.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="comptoir twin", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", type=int, default=2, help="simulated reader boards (default 2)")
    ap.add_argument("--baud", type=int, default=115200, help="serial line rate (default 115200)")
    ap.add_argument("--heartbeat-ms", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=0.0,
                    help="stop after this many seconds (default: run until Ctrl-C)")
    ap.add_argument("--no-demo", action="store_true", help="no scripted faults, just run")
    ap.add_argument("--firmware-output", action="store_true",
                    help="also print what the firmware prints")
    args = ap.parse_args(argv)

    def fw_line(i: int, line: str) -> None:
        if args.firmware_output or line.startswith("[twin]"):
            term.say(f"board{i} firmware: {line}")

    twin = Twin(args.boards, baud=args.baud, heartbeat_ms=args.heartbeat_ms,
                on_firmware_line=fw_line)
    term = Terminal(twin)
    # The daemon's JSON-lines log goes to a file; the screen shows the story.
    log_path = twin.workdir / "comptoir.log"
    logs.setup(path=str(log_path))
    print(f"Comptoir software twin: {args.boards} reader board(s), real firmware on the "
          f"MicroPython unix port (100 KB heap), {args.baud} baud serial lines, host daemon.")
    print(f"Daemon log (JSON lines): {log_path}")
    print("Press Ctrl-C to stop." if not args.duration else f"Running for {args.duration:g} s.")
    stop = threading.Event()
    try:
        twin.start()
        term.names = {b.port: f"board{b.index}" for b in twin.boards}
        assert twin.daemon is not None
        twin.daemon.subscribe(term.on_event)
        if not twin.wait_all_up(30):
            term.say("error: not every board came up within 30 s")
            return 1
        for b in twin.boards:
            twin.daemon.send(b.port, F.STATUS_REQUEST)
        if not args.no_demo:
            threading.Thread(target=_demo, args=(twin, term, stop), daemon=True).start()
        deadline = time.monotonic() + args.duration if args.duration else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print()
    finally:
        stop.set()
        term.quiet = True
        twin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
