"""Hardware-in-loop bench pieces: the device under test behind one interface, and a
MicroPython REPL on a pseudo-terminal that stands in for a board's USB port.

A *target* (labgrid's word: the thing the tests drive) is either a real reader
board on a serial port or the twin (the same firmware on the MicroPython unix
port behind the wire model). Both give the tests the same things: the daemon
serving the board's port, its event stream, and a way to put raw bytes on the
line towards the board, so one scenario file runs against both
(tests/hil/, docs/flashing.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from comptoir import presentations
from comptoir.daemon import Daemon
from comptoir.pairing import PairedBoards
from comptoir_tools.boards import definitions as boards_mod
from comptoir_tools.simulators.insurer import SimulatedInsurer

MICROPYTHON = Path(sys.executable).with_name("micropython")


class UnixPortRepl:
    """The MicroPython unix port's REPL on a pseudo-terminal, for mpremote.

    micropython runs only a REPL when its stdin is a terminal, so it gets the
    slave of one pty; mpremote needs a device path to open, so a second pty's
    slave is that path, and a thread copies bytes between the two masters (what
    `socat PTY,raw,echo=0 EXEC:micropython,pty,raw` would do, without socat).
    mpremote must use `resume`: its soft reset would end the unix port.
    """

    def __init__(self, heap: str = "100K", cwd: Path | None = None) -> None:
        self.heap = heap
        self.cwd = cwd
        self.port = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._fds: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> UnixPortRepl:
        board_m, board_s = os.openpty()
        user_m, user_s = os.openpty()
        # Raw on both slaves: no echo, no CR/LF translation, so the raw REPL's
        # bytes reach mpremote as MicroPython wrote them.
        tty.setraw(board_s)
        tty.setraw(user_s)
        self._proc = subprocess.Popen(
            [str(MICROPYTHON), "-X", f"heapsize={self.heap}"],
            stdin=board_s, stdout=board_s, stderr=board_s, cwd=self.cwd,
            start_new_session=True,  # its own session: the pty becomes its terminal
        )
        os.close(board_s)
        self.port = os.ttyname(user_s)
        # Keep user_s open: when the last slave fd closes, reads on the master fail (EIO).
        self._fds = [board_m, user_m, user_s]
        self._thread = threading.Thread(target=self._relay, args=(board_m, user_m),
                                        daemon=True, name="unix-port pty relay")
        self._thread.start()
        return self

    def _relay(self, board_m: int, user_m: int) -> None:
        peer = {board_m: user_m, user_m: board_m}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(peer), [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    if fd == board_m:
                        return  # the interpreter exited
                    continue  # mpremote closed its end; it may reopen
                if data:
                    os.write(peer[fd], data)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    def __enter__(self) -> UnixPortRepl:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------- pytest options


def add_pytest_options(parser: Any) -> None:
    """The bench's pytest options (`parser` is a pytest.Parser; typed loosely so that
    this module does not import pytest)."""
    group = parser.getgroup("comptoir-hil", "Comptoir hardware-in-loop bench")
    group.addoption("--board-port", default=None, metavar="PORT",
                    help="serial port of a real board's host link; without it the link "
                    "scenarios run on the twin and hardware-only (hil) tests skip")
    group.addoption("--board", default=None, metavar="NAME",
                    help=f"board definition ({', '.join(boards_mod.list_boards())})")
    group.addoption("--repl-port", default=None, metavar="PORT",
                    help="the board's REPL port when it is not --board-port (the Freenove "
                    "S3's native USB), for make hil's checklist")
    group.addoption("--paired-dir", default=None, metavar="DIR",
                    help="host directory of paired boards (default ~/.config/comptoir/boards)")


# ---------------------------------------------------------------------- targets


class EventLog:
    """Every daemon event, with a way to wait for one (pytest-embedded's `expect`, for
    structured events instead of text)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._cv = threading.Condition()

    def __call__(self, ev: Any) -> None:
        with self._cv:
            self.events.append(ev)
            self._cv.notify_all()

    def mark(self) -> int:
        with self._cv:
            return len(self.events)

    def of(self, kind: type) -> list[Any]:
        with self._cv:
            return [e for e in self.events if isinstance(e, kind)]

    def expect(self, pred: Callable[[Any], bool], timeout: float = 10.0, after: int = 0) -> Any:
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


class Target:
    """A board the daemon serves; subclasses say where it is."""

    board: boards_mod.Board
    daemon: Daemon
    port: str
    log: EventLog

    def inject(self, data: bytes) -> None:
        """Raw bytes on the line towards the board (noise, truncated or foreign frames)."""
        raise NotImplementedError

    def stop(self) -> None:
        self.daemon.stop()


class SerialTarget(Target):
    """A real reader board on a serial port, flashed and paired with `comptoir flash`."""

    def __init__(self, board: str, port: str, *, paired_dir: Path | None = None,
                 heartbeat_ms: int = 1000, baud: int | None = None) -> None:
        self.board = boards_mod.load(board)
        self.port = port
        if not os.path.exists(port) and "://" not in port:
            raise FileNotFoundError(f"serial port {port} does not exist")
        self.baud = baud or int(self.board.definition["uarts"]["host"]["baud"])
        self.log = EventLog()
        self.daemon = Daemon([port], baud=self.baud, heartbeat_ms=heartbeat_ms,
                             paired=PairedBoards(paired_dir))
        self.daemon.subscribe(self.log)
        # The NFC service gives the board its challenges and answers its taps; the
        # verifier trusts a test PKI (a phone with a real wallet is refused by name).
        self._tmp = tempfile.TemporaryDirectory(prefix="comptoir-hil-")
        self.insurer = SimulatedInsurer(Path(self._tmp.name))
        self.presentations = presentations.attach(self.daemon, self.insurer.verifier,
                                                  self.insurer.challenges)
        self.daemon.start()

    def stop(self) -> None:
        self.daemon.stop()
        self.presentations.stop()
        self.insurer.close()
        self._tmp.cleanup()

    def inject(self, data: bytes) -> None:
        # The connection thread owns the port; a write from here may land inside
        # one of its frames, which is exactly the kind of noise the test wants.
        self.daemon.connections[self.port]._write(memoryview(data))


class TwinTarget(Target):
    """The same firmware on the ESP32 port stand-in (MicroPython unix port), behind
    the wire model, with the board definition deployed as /board.json (slimmed)."""

    def __init__(self, board: str, *, workdir: Path | None = None, heartbeat_ms: int = 1000,
                 baud: int | None = None) -> None:
        from comptoir_tools.firmware.build import compile_tree
        from comptoir_tools.simulators.wire import WireModel
        from comptoir_tools.twin.twin import FirmwareProcess

        self.board = boards_mod.load(board)
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="comptoir-hil-")
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.baud = baud or int(self.board.definition["uarts"]["host"]["baud"])
        fw_dir = self.workdir / "firmware"
        compile_tree(out=fw_dir)
        board_file = self.workdir / "board.json"
        board_file.write_text(json.dumps(self.board.device_definition()))
        self.wire = WireModel(self.baud, self.workdir / "dev", name="dut", seed=1).start()
        self.port = str(self.wire.path_b)
        paired = PairedBoards(self.workdir / "paired")
        board_id = "c0a7" + os.urandom(4).hex()
        # A board on the bench has its PN532: the simulator stands in for it (on
        # whatever bus the definition names: the ESP32 port stand-in bridges SPI/I2C).
        uarts: dict[str, Path | str] = {"host": self.wire.path_a}
        self.pn532 = None
        if "pn532" in self.board.definition:
            from comptoir_tools.simulators.pn532_sim import PN532Sim, Timing

            self.pn532 = PN532Sim(timing=Timing(model_uart=False), seed=1).start()
            uarts["pn532"] = self.pn532.port
        self.firmware = FirmwareProcess(
            fw_dir, uarts, bauds={"host": self.baud}, board_id=board_id,
            pair_key=paired.add(board_id), state_dir=self.workdir / "state",
            board_file=board_file, before_boot=lambda: self.wire.flush_input("a"))
        self.log = EventLog()
        self.daemon = Daemon([self.port], baud=self.baud, heartbeat_ms=heartbeat_ms,
                             paired=paired)
        self.daemon.subscribe(self.log)
        self.daemon.start()
        self.firmware.start()

    def inject(self, data: bytes) -> None:
        self.wire.inject_garbage("b2a", data)

    def stop(self) -> None:
        self.firmware.stop()
        self.daemon.stop()
        self.wire.stop()
        if self.pn532 is not None:
            self.pn532.close()
        if self._tmp is not None:
            self._tmp.cleanup()
