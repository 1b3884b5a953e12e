"""The host link over the firmware's own stdin/stdout (`--uart host=stdio`), the
twin's stand-in for a board whose host link is the REPL's UART (UART0 through
the USB bridge, `"repl": true` in the board file): the firmware reads the link
from sys.stdin.buffer and writes it to sys.stdout.buffer, prints nothing else
there, and frames full of 0x03 bytes (Ctrl-C) go through as data.

The NFC board (devkitc-pn532-spi, 100 KB heap, a simulated PN532) also reports
its heap after a collection, on stdio and on a pty, so the cost of the stdio
path is visible: it must stay small."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from comptoir.daemon import parse_status
from comptoir_link import frames as F
from comptoir_link.host_side import HostLink
from comptoir_link.link import UP
from comptoir_tools.boards import definitions as boards
from comptoir_tools.firmware.build import compile_tree
from comptoir_tools.simulators.pn532_sim import PN532Sim, Timing
from comptoir_tools.twin.twin import FirmwareProcess

BOARD = "devkitc-pn532-spi"


class _Board:
    """The firmware on MicroPython with its host link on stdio or on a pty."""

    def __init__(self, tmp: Path, mode: str, heap: str = "100K") -> None:
        fw = tmp / "fw"
        if not fw.exists():
            compile_tree(out=fw)
        # As deployed by `comptoir flash` (and as the twin runs it): only the keys
        # the firmware reads.
        board_file = tmp / f"{BOARD}.json"
        board_file.write_text(json.dumps(boards.load(BOARD).device_definition()))
        self.sim: PN532Sim | None = PN532Sim(timing=Timing(model_uart=False), seed=1).start()
        self.master: int | None = None
        if mode == "stdio":
            host = "stdio"
        else:
            self.master, slave = os.openpty()
            host = os.ttyname(slave)
            self._slave = slave
        fp = FirmwareProcess(fw, {"host": host, "pn532": str(self.sim.port)},
                             board_id="a1b2c3d4",
                             state_dir=tmp / f"state-{mode}", board_file=board_file,
                             heap=heap, restart=False)
        (tmp / f"state-{mode}").mkdir(exist_ok=True)
        self.proc = subprocess.Popen(fp.command(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stderr: list[bytes] = []
        self.rx = bytearray()  # everything the host received
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        src = self.proc.stdout if self.master is None else None
        threading.Thread(target=self._read_link, args=(src,), daemon=True).start()
        self.got: list[tuple[int, bytes]] = []
        self.link = HostLink(self.write, heartbeat_ms=200)
        self.link.on_message = lambda t, p: self.got.append((t, bytes(p)))

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.master is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(bytes(data))
            self.proc.stdin.flush()
        else:
            os.write(self.master, bytes(data))

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _read_link(self, src) -> None:
        while True:
            try:
                data = src.read1(4096) if src is not None else os.read(self.master, 4096)
            except (OSError, ValueError):
                return
            if not data:
                return
            with self._lock:
                self._chunks.append(data)

    def pump(self) -> None:
        with self._lock:
            chunks, self._chunks = self._chunks, []
        for c in chunks:
            self.rx += c
            self.link.feed(c)
        self.link.poll()

    def until(self, cond, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            if cond():
                return True
            time.sleep(0.005)
        return False

    def status(self) -> dict[str, int]:
        n = sum(1 for t, _ in self.got if t == F.STATUS)
        assert self.until(lambda: self.link.send(F.STATUS_REQUEST))
        assert self.until(lambda: sum(1 for t, _ in self.got if t == F.STATUS) > n)
        return parse_status([p for t, p in self.got if t == F.STATUS][-1])

    def close(self) -> None:
        if self.sim is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        if self.master is not None:
            os.close(self.master)
            os.close(self._slave)
        self.sim.close()
        self.sim = None


@pytest.fixture
def board_on(tmp_path: Path):
    made: list[_Board] = []

    def make(mode: str) -> _Board:
        b = _Board(tmp_path, mode)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def _settled_heap(b: _Board) -> int:
    # The loop collects after a second of idle link: wait for two of them (the host
    # keeps serving its link meanwhile, as the daemon does).
    b.until(lambda: False, 2.5)
    return b.status()["heap_after_gc"]


def test_link_over_stdio_carries_ctrl_c_bytes(board_on) -> None:
    b = board_on("stdio")
    assert b.until(lambda: b.link.state == UP), (b.stderr, bytes(b.rx[:600]))
    assert b.link.peer[F.T_BOARD_ID] == bytes.fromhex("a1b2c3d4")
    assert b.link.peer[F.T_BOARD_NAME] == b"devkitc-pn532-spi"
    # Frames made of Ctrl-C: a board whose link is the REPL's UART would raise
    # KeyboardInterrupt on the first one. The firmware answers each with ERROR
    # (a type it does not handle), so each one was received whole.
    # One frame at a time, each until answered: on a loaded machine the link may restart
    # (a stall past the heartbeat loss), and a frame sent in the old session is not answered
    # in the new one; then the same frame is sent again.
    # (At most what the board announced it receives, 96 bytes on a REPL link: the
    # ESP32's REPL keeps 260 received bytes, ports/esp32/mphalport.c stdin_ringbuf;
    # docs/boards.md.)
    assert b.link.tx_limit == 96
    sizes = (1, 3, 64, b.link.tx_limit)
    for sent, size in enumerate(sizes, start=1):
        for _attempt in range(3):
            assert b.until(lambda size=size: b.link.send(0x7E, b"\x03" * size))
            if b.until(lambda sent=sent: sum(1 for t, _ in b.got if t == F.ERROR) >= sent, 10):
                break
        else:
            raise AssertionError(f"no answer to a {size}-byte frame of 0x03: "
                                 f"{b.stderr} {b.proc.poll()}")
    errors = [p for t, p in b.got if t == F.ERROR]
    assert all(p[2:].startswith(b"unhandled frame type 0x7e") for p in errors), errors
    st = b.status()
    assert st["crc_errors"] == 0 and st["malformed_frames"] == 0, st
    assert b.proc.poll() is None, b.stderr
    # Nothing but the link went to stdout: every byte the host got was part of
    # a good frame (the banner and the LED lines went to stderr).
    assert b.link.counters is not None
    text = b"".join(b.stderr).decode(errors="replace")
    assert "OUT led_ready 1" in text, text  # the board's LEDs, on the twin's console
    assert b"OUT " not in b.rx and b"Traceback" not in b.rx


def test_stdio_link_ends_with_its_host(board_on) -> None:
    # The host closes the link's input: the process ends instead of spinning.
    b = board_on("stdio")
    assert b.until(lambda: b.link.state == UP), b.stderr
    assert b.proc.stdin is not None
    b.proc.stdin.close()
    assert b.proc.wait(10) == 0, b.stderr


def test_heap_after_gc_stdio_and_pty(board_on, record_property) -> None:
    heaps = {}
    for mode in ("pty", "stdio"):
        b = board_on(mode)
        assert b.until(lambda b=b: b.link.state == UP), (mode, b.stderr)
        heaps[mode] = _settled_heap(b)
        b.close()
    record_property("heap_after_gc", heaps)
    print("heap_after_gc", heaps)
    # The stdio path costs its small module and nothing per byte.
    assert heaps["stdio"] >= heaps["pty"] - 1536, heaps
