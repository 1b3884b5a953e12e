"""One reader board on one serial port: a thread that owns the port and the link.

pyserial is a blocking API and every board needs its own read loop, so each
board gets a thread (docs/architecture.md says why threads and not asyncio).
The thread opens the port (a device path, a pty, or any pyserial URL such as
socket://), feeds received bytes to the shared link protocol, runs its timers,
sends what the daemon queued, and reopens the port when the board is unplugged
and plugged back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import serial

from comptoir.events import (
    BoardDown,
    BoardInfo,
    BoardRefused,
    BoardUp,
    LinkError,
    Message,
    PortLost,
    PortOpened,
)
from comptoir.pairing import PROOF_TIMEOUT_S, PairedBoards, PairingGate
from comptoir.tasks import Health, ThreadTask
from comptoir_link import frames as F
from comptoir_link import names
from comptoir_link.host_side import HostLink
from comptoir_link.link import COUNTER_NAMES, UP

log = logging.getLogger("comptoir.board")

REOPEN_INTERVAL_S = 0.25
READ_TIMEOUT_S = 0.005
STOP_JOIN_S = 2.0  # what a board's thread may take to close its port once told to stop


def board_info(items: dict[int, bytes]) -> BoardInfo:
    """A HELLO's TLV items as a BoardInfo; unknown or missing items get defaults."""

    def text(tag: int) -> str:
        return items.get(tag, b"").decode("utf-8", "replace")

    caps = F.u16(items[F.T_CAPS]) if len(items.get(F.T_CAPS, b"")) == 2 else 0
    heap = items.get(F.T_FREE_HEAP)
    return BoardInfo(
        board_id=items.get(F.T_BOARD_ID, b"").hex(),
        name=text(F.T_BOARD_NAME),
        firmware=text(F.T_FIRMWARE),
        capabilities=tuple(names.caps_names(caps)),
        max_payload=F.u16(items[F.T_MAX_PAYLOAD]) if F.T_MAX_PAYLOAD in items else 0,
        free_heap=int.from_bytes(heap, "little") if heap and len(heap) == 4 else None,
    )


class BoardConnection:
    """One board's thread, a comptoir.tasks.Task (start, stop, health): a `ThreadTask` whose
    round is the whole connection (open the port, serve the link, reopen after a loss) until
    it is told to stop; then the port is closed and the session ended, and `stop` joins it."""

    def __init__(
        self,
        port: str,
        events: queue.Queue[Any],
        *,
        baud: int = 115200,
        heartbeat_ms: int = 1000,
        max_payload: int = F.DEFAULT_MAX_PAYLOAD,
        window: int = 2,
        accept_hello: Callable[[BoardInfo], tuple[int, str] | None] | None = None,
        paired: PairedBoards | None = None,
    ) -> None:
        self.name = f"board {port}"
        self.port = port
        self.baud = baud
        self._events = events
        self._outq: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self._task = ThreadTask(self.name, self._run, join_s=STOP_JOIN_S)
        self._ser: serial.SerialBase | None = None
        self.link = HostLink(self._write, baud=baud, heartbeat_ms=heartbeat_ms,
                         max_payload=max_payload, window=window, random_bytes=os.urandom)
        self.link.on_message = self._on_message
        self.link.on_up = self._on_up
        self.link.on_down = self._on_down
        self.link.on_error = self._on_error
        self._accept = accept_hello
        self._gate = PairingGate(paired) if paired is not None else None
        self._proof_deadline = 0.0
        self.link.accept_hello = self._on_hello
        self.board: BoardInfo | None = None
        self._pending: tuple[int, bytes] | None = None

    # ------------------------------------------------------------- daemon side
    def send(self, ftype: int, payload: bytes = b"") -> None:
        """Queue a frame for the board (sent in order once the link has room)."""
        self._outq.put((ftype, bytes(payload)))

    def start(self) -> None:
        self._task.start()

    def stop(self, wait: bool = True) -> None:
        """Tell the thread to stop; with `wait`, join it (its port closed)."""
        self._task.stop(wait)

    def health(self) -> Health:
        return self._task.health()

    @property
    def up(self) -> bool:
        """A session is up and, when pairing is required, the board is admitted."""
        return self.link.state == UP and (self._gate is None or self._gate.admitted)

    def counters(self) -> dict[str, int]:
        return dict(zip(COUNTER_NAMES, self.link.counters, strict=True))

    # ------------------------------------------------------------- link callbacks
    def _write(self, data: memoryview) -> None:
        if self._ser is not None:
            self._ser.write(data)

    def _on_hello(self, items: dict[int, bytes]) -> tuple[int, str] | None:
        info = board_info(items)
        if self._gate is not None:
            refusal = self._gate.on_hello(info.board_id)
            if refusal is not None:
                self._refused(info.board_id, refusal.text)
                return refusal.reason, refusal.text
        return self._accept(info) if self._accept is not None else None

    def _refused(self, board_id: str, text: str) -> None:
        log.warning("board refused", extra={"port": self.port, "board_id": board_id,
                                            "reason": text})
        self._events.put(BoardRefused(self.port, board_id, text))

    def _on_message(self, ftype: int, payload: memoryview) -> None:
        if self._gate is not None and not self._gate.admitted:
            refusal = self._gate.on_first_frame(self.link, ftype, bytes(payload))
            if refusal is not None:
                self._refused(self.board.board_id if self.board else "", refusal.text)
                self.link.refuse(refusal.reason, refusal.text)
            else:
                self._admit()
            return
        bid = self.board.board_id if self.board else ""
        self._events.put(Message(self.port, bid, ftype, bytes(payload), time.monotonic()))

    def _on_up(self, items: dict[int, bytes]) -> None:
        self.board = board_info(items)
        if self._gate is None:
            self._admit()
        else:
            self._gate.on_session()
            self._proof_deadline = time.monotonic() + PROOF_TIMEOUT_S

    def _admit(self) -> None:
        assert self.board is not None
        log.info("board up", extra={"port": self.port, "board_id": self.board.board_id,
                                    "board_name": self.board.name,
                                    "firmware": self.board.firmware})
        self._events.put(BoardUp(self.port, self.board))

    def _check_proof_deadline(self) -> None:
        if (self._gate is not None and self.link.state == UP and not self._gate.admitted
                and time.monotonic() > self._proof_deadline):
            text = "no pairing proof in time"
            self._refused(self.board.board_id if self.board else "", text)
            self.link.refuse(F.REJECT_UNKNOWN_BOARD, text)

    def _on_down(self, reason: str) -> None:
        was_admitted = self._gate is None or self._gate.admitted
        if self._gate is not None:
            self._gate.admitted = False
        self._pending = None
        self._drain_outq()
        if was_admitted:
            log.warning("board down", extra={"port": self.port, "reason": reason})
            self._events.put(BoardDown(self.port, reason))

    def _on_error(self, counter: str, detail: str) -> None:
        log.warning("link error", extra={"port": self.port, "counter": counter, "detail": detail})
        self._events.put(LinkError(self.port, counter, detail))

    def _drain_outq(self) -> None:
        # Frames queued for a session that ended are dropped, not replayed into
        # the next one: the daemon re-decides what the board needs after HELLO.
        try:
            while True:
                self._outq.get_nowait()
        except queue.Empty:
            pass

    # ------------------------------------------------------------- thread body
    def _run(self, stop: threading.Event) -> None:
        missing_reported = False
        while not stop.is_set():
            try:
                self._ser = serial.serial_for_url(self.port, baudrate=self.baud,
                                                  timeout=READ_TIMEOUT_S, write_timeout=5)
            except (serial.SerialException, OSError, ValueError) as e:
                if not missing_reported:
                    self._events.put(PortLost(self.port, f"cannot open: {e}"))
                    missing_reported = True
                stop.wait(REOPEN_INTERVAL_S)
                continue
            missing_reported = False
            self._events.put(PortOpened(self.port))
            try:
                self._serve(stop)
            except (serial.SerialException, OSError) as e:
                log.warning("port lost", extra={"port": self.port, "error": str(e)})
                self._events.put(PortLost(self.port, str(e)))
            finally:
                ser, self._ser = self._ser, None
                with contextlib.suppress(serial.SerialException, OSError):
                    ser.close()
                self.link.reset("serial port lost")
            stop.wait(REOPEN_INTERVAL_S)
        if self.link.state == UP:
            self.link.reset("daemon stopping")

    def _serve(self, stop: threading.Event) -> None:
        ser = self._ser
        assert ser is not None
        while not stop.is_set():
            data = ser.read(ser.in_waiting or 1)
            if data:
                self.link.feed(data)
            self.link.poll()
            self._check_proof_deadline()
            self._send_queued()

    def _send_queued(self) -> None:
        while self.link.can_send():
            if self._pending is None:
                try:
                    self._pending = self._outq.get_nowait()
                except queue.Empty:
                    return
            ftype, payload = self._pending
            if payload and len(payload) > self.link.tx_limit:
                log.error("frame too large for the board", extra={
                    "port": self.port, "size": len(payload), "limit": self.link.tx_limit})
                self._pending = None
                continue
            if not self.link.send(ftype, payload):
                return
            self._pending = None
