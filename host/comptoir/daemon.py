"""The daemon core: one BoardConnection per port, one event loop thread that
keeps the boards' status and hands events to whoever subscribed (the terminal
display, later the verifier, the API's event stream)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from comptoir.board_link import BoardConnection
from comptoir.discovery import DEFAULT_USB_IDS, find_boards
from comptoir.events import (
    BoardDown,
    BoardInfo,
    BoardRefused,
    BoardStatus,
    BoardUp,
    LinkError,
    Message,
    PortLost,
    PortOpened,
)
from comptoir.pairing import PairedBoards
from comptoir.tasks import ThreadTask
from comptoir_link import frames as F
from comptoir_link import names

log = logging.getLogger("comptoir.daemon")

Subscriber = Callable[[Any], None]


def parse_status(payload: bytes) -> dict[str, int]:
    """A STATUS frame's u32 values by name (fields a newer board adds are kept by index)."""
    vals = [int.from_bytes(payload[i : i + 4], "little") for i in range(0, len(payload) - 3, 4)]
    return dict(zip(names.STATUS_FIELDS, vals, strict=False))


class Daemon:
    def __init__(
        self,
        ports: Iterable[str] = (),
        *,
        baud: int = 115200,
        heartbeat_ms: int = 1000,
        discover: bool = False,
        usb_ids: Iterable[tuple[int, int]] = DEFAULT_USB_IDS,
        accept_hello: Callable[[BoardInfo], tuple[int, str] | None] | None = None,
        paired: PairedBoards | None = None,
        port_bauds: dict[str, int] | None = None,
    ) -> None:
        self.baud = baud
        self.heartbeat_ms = heartbeat_ms
        self._discover = discover
        self._usb_ids = tuple(usb_ids)
        self._accept = accept_hello
        self.paired = paired
        self.port_bauds = dict(port_bauds or {})  # ports whose line is not at `baud`
        self.events: queue.Queue[Any] = queue.Queue()
        self.connections: dict[str, BoardConnection] = {}
        self.status: dict[str, BoardStatus] = {}
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        # The event loop, a comptoir.tasks.Task: it waits 0.1 s at most for an event, so a
        # stop is seen at once; 2 s for a subscriber's round to finish.
        self._loop_task = ThreadTask("daemon events", self._loop, join_s=2.0)
        for p in ports:
            self.add_port(p)

    def subscribe(self, fn: Subscriber) -> None:
        self._subscribers.append(fn)

    def add_port(self, port: str) -> BoardConnection:
        with self._lock:
            if port in self.connections:
                return self.connections[port]
            conn = BoardConnection(port, self.events, baud=self.port_bauds.get(port, self.baud),
                                   heartbeat_ms=self.heartbeat_ms, accept_hello=self._accept,
                                   paired=self.paired)
            self.connections[port] = conn
            self.status[port] = BoardStatus(port)
            if self._loop_task.health() == "running":
                conn.start()
            return conn

    def send(self, port: str, ftype: int, payload: bytes = b"") -> None:
        self.connections[port].send(ftype, payload)

    def start(self) -> Daemon:
        for conn in self.connections.values():
            conn.start()
        self._loop_task.start()
        return self

    def stop(self) -> None:
        self._loop_task.stop(wait=False)  # told first: it adds no board while they stop
        for conn in self.connections.values():
            conn.stop(wait=False)  # every board told, then each joined
        for conn in self.connections.values():
            conn.stop()
        self._loop_task.stop()

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------------- loop
    def _loop(self, stop: threading.Event) -> None:
        next_scan = 0.0
        while not stop.is_set():
            if self._discover and time.monotonic() >= next_scan:
                for dev in find_boards(self._usb_ids):
                    if dev not in self.connections:
                        log.info("board found", extra={"port": dev})
                        self.add_port(dev)
                next_scan = time.monotonic() + 2.0
            try:
                ev = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            self._track(ev)
            for fn in list(self._subscribers):
                try:
                    fn(ev)
                except Exception:  # a failing subscriber must not stop the daemon
                    log.exception("event subscriber failed")

    def _track(self, ev: Any) -> None:
        st = self.status.get(getattr(ev, "port", ""))
        if st is None:
            return
        if isinstance(ev, BoardUp):
            st.state, st.board = "up", ev.board
        elif isinstance(ev, BoardDown):
            st.state = "down"
        elif isinstance(ev, PortLost):
            st.state = "absent"
        elif isinstance(ev, PortOpened):
            st.state = "down"
        elif isinstance(ev, BoardRefused):
            st.state = "refused"
        elif isinstance(ev, LinkError):
            st.counters[ev.counter] = st.counters.get(ev.counter, 0) + 1
        elif isinstance(ev, Message):
            if ev.ftype == F.STATUS:
                st.last_status = parse_status(ev.payload)
            elif ev.ftype == F.LOG and ev.payload:
                log.info("board log", extra={"port": ev.port, "level": ev.payload[0],
                                             "text": ev.payload[1:].decode("utf-8", "replace")})
            elif ev.ftype == F.ERROR and len(ev.payload) >= 2:
                log.warning("board error", extra={
                    "port": ev.port, "code": int.from_bytes(ev.payload[:2], "little"),
                    "text": ev.payload[2:].decode("utf-8", "replace")})
