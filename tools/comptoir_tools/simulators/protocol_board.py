"""A reader board reduced to its link: the firmware's own BoardLink, driven from
CPython over a serial port, sending what a camera board with an on-board QR
decoder sends (one QR_TEXT frame per screen). For volume tests and benchmarks of
the daemon, where the reader's own work is not what is measured."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import serial

from comptoir_link import frames as F
from comptoir_link.board_side import BoardLink
from comptoir_tools.simulators.wire import WireModel


class QrBoard(threading.Thread):
    """Sends `texts` as QR_TEXT frames (object ids 0x8000 + i), at most 8 awaiting a
    verdict, and records each VERDICT by object id."""

    def __init__(self, index: int, wire: WireModel, key: bytes, texts: list[str]) -> None:
        super().__init__(daemon=True)
        self.board_id = bytes((0xB0, index, 0x5A, 0x5A))
        self.ser = serial.serial_for_url(str(wire.path_a), timeout=0.005)
        self.link = BoardLink(self.ser.write, baud=wire.baud, max_payload=1024,
                              hello_items={F.T_BOARD_ID: self.board_id,
                                           F.T_CAPS: F.u16_bytes(F.CAP_CAMERA | F.CAP_QR_DECODE)},
                              random_bytes=os.urandom, pair_key=key)
        self.texts = texts
        self.verdicts: dict[int, int] = {}
        self.link.on_message = self._on_message
        self.done = threading.Event()

    def _on_message(self, ftype: int, payload: Any) -> None:
        if ftype == F.VERDICT:
            self.verdicts[F.u16(payload[0:2])] = payload[2]

    def run(self) -> None:
        i = 0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and len(self.verdicts) < len(self.texts):
            data = self.ser.read(self.ser.in_waiting or 1)
            if data:
                self.link.feed(data)
            self.link.poll()
            while i < len(self.texts) and self.link.can_send() and i - len(self.verdicts) < 8:
                oid = 0x8000 | i
                self.link.send(F.QR_TEXT, oid.to_bytes(2, "little") + self.texts[i].encode())
                i += 1
        self.done.set()


class QrCounters:
    """Several QrBoards on the real link (wire model at 921 600 baud) to a real
    daemon with the presentation services and a transaction store: the pharmacy
    side whole, the readers reduced to their link. `texts[i]` is what board i shows.

        with QrCounters(tmp, insurer, texts) as c:
            c.daemon.subscribe(...)   # before run()
            c.run()
    """

    def __init__(self, tmp: Any, insurer: Any, texts: list[list[str]]) -> None:
        from comptoir import presentations
        from comptoir.daemon import Daemon
        from comptoir.http.feed import EventFeed
        from comptoir.opener import TransactionOpener
        from comptoir.pairing import PairedBoards
        from comptoir.transactions import JournalBiller, TransactionStore

        paired = PairedBoards(tmp / "paired")
        self.wires = [WireModel(921600, tmp / "dev", name=f"qr{i}", seed=i).start()
                      for i in range(len(texts))]
        self.daemon = Daemon([str(w.path_b) for w in self.wires], baud=921600,
                             heartbeat_ms=500, paired=paired)
        self._pres = presentations.attach(self.daemon, insurer.verifier, insurer.challenges,
                                          qr_hold=0.0)
        self.store = TransactionStore(tmp / "tx.db", bytes(range(32)),
                                      JournalBiller(tmp / "billing.db"))
        self.daemon.subscribe(TransactionOpener(self.store, EventFeed()).on_event)
        self.boards = [QrBoard(i, w, paired.add(bytes((0xB0, i, 0x5A, 0x5A)).hex()), texts[i])
                       for i, w in enumerate(self.wires)]

    def __enter__(self) -> QrCounters:
        self.daemon.start()
        return self

    def run(self, timeout: float = 600) -> float:
        """Every board sends all its texts; the wall time it took."""
        start = time.monotonic()
        for b in self.boards:
            b.start()
        for b in self.boards:
            b.done.wait(timeout)
        return time.monotonic() - start

    def __exit__(self, *exc: object) -> None:
        self.daemon.stop()
        self._pres.stop()
        for b in self.boards:
            b.ser.close()
        for w in self.wires:
            w.stop()
        self.store.close()
