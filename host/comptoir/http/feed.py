"""The event stream: daemon events, presentations and transactions turned into JSON records
for /v1/events (server-sent events), kept for replay and handed to each subscriber. It only
serialises: the transactions are opened by comptoir.opener.

What a record may hold: ports, board ids, channels, verdicts, reasons, transaction ids and
states, counts of people. Never a NIR and never a name: the dispensing software reads the
transaction (GET /v1/transactions/{id}) to show who is who.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

from comptoir.events import BoardDown, BoardRefused, BoardUp, PortLost
from comptoir.nfc_service import Presentation, TapFailed
from comptoir.tokens.model import Verified
from comptoir.tokens.reasons import ERROR_REASONS
from comptoir.transactions import TransactionView

log = logging.getLogger("comptoir.api")

REPLAY = 256  # records kept for a client that reconnects with Last-Event-ID
QUEUE = 1024  # per client; a client this far behind is dropped (it reconnects and replays)


class Subscription:
    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[int, str, dict[str, Any]] | None] = queue.Queue(QUEUE)
        self.closed = False


class EventIds:
    """Event ids that keep increasing across restarts: ids are handed out from blocks reserved
    in a small file (one fsync'd write per `BLOCK` events); a restart starts after the last
    block reserved, so an id is never given twice and a client's Last-Event-ID from before the
    restart still means "what came after". Without a file: from 1, in memory."""

    BLOCK = 1000

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._next = 1
        self._reserved = 0
        if path is not None:
            try:
                self._next = int(path.read_text().strip() or 0) + 1
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as e:
                # A damaged file: start far above anything a day's events could have reached.
                log.error("event id file unreadable; ids jump ahead",
                          extra={"file": str(path), "error": str(e)})
                self._next = int(time.time()) * 1000
            self._reserved = self._next - 1

    def __next__(self) -> int:
        n = self._next
        if self.path is not None and n > self._reserved:
            self._reserve(n + self.BLOCK - 1)
        self._next += 1
        return n

    def _reserve(self, upto: int) -> None:
        assert self.path is not None
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, f"{upto}\n".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as e:  # a full disk: ids go on in memory; a restart may reuse some
            log.error("event ids not reserved on disk", extra={"file": str(self.path),
                                                                "error": str(e)})
        self._reserved = upto


class EventFeed:
    def __init__(self, metrics: Any = None, ids: EventIds | None = None) -> None:
        """`ids`: EventIds on a file in the data directory, so that ids survive a restart."""
        self.metrics = metrics
        self._lock = threading.Lock()
        self._ids = ids or EventIds()
        self._recent: collections.deque[tuple[int, str, dict[str, Any]]] = \
            collections.deque(maxlen=REPLAY)
        self._subs: list[Subscription] = []

    # --- producers -------------------------------------------------------------------------

    def on_event(self, ev: Any) -> None:
        """A daemon subscriber (runs on the daemon's event thread): boards and failed taps.
        Presentations come through the transaction opener (comptoir.opener), `presented`."""
        if isinstance(ev, TapFailed):
            self.publish("tap_failed", {"port": ev.port, "object_id": ev.object_id,
                                        "code": ev.code, "text": ev.text})
        elif isinstance(ev, BoardUp):
            self.publish("board", {"port": ev.port, "state": "up", "board_id": ev.board.board_id,
                                   "name": ev.board.name, "firmware": ev.board.firmware})
        elif isinstance(ev, BoardDown):
            self.publish("board", {"port": ev.port, "state": "down", "reason": ev.reason})
        elif isinstance(ev, PortLost):
            self.publish("board", {"port": ev.port, "state": "absent", "reason": ev.error})
        elif isinstance(ev, BoardRefused):
            self.publish("board", {"port": ev.port, "state": "refused",
                                   "board_id": ev.board_id, "reason": ev.reason})

    def presented(self, ev: Presentation, tx: TransactionView | None,
                  error: str | None = None) -> None:
        """A presentation's record: its verdict and, if one opened, its transaction; `error`:
        the code of why a verified presentation opened none."""
        rec: dict[str, Any] = {"port": ev.port, "board_id": ev.board_id,
                               "channel": ev.channel, "object_id": ev.object_id}
        if error is not None:
            rec["verdict"], rec["reason"] = "error", error
        elif isinstance(ev.result, Verified):
            rec["verdict"] = "choose_beneficiary" if ev.result.beneficiaries else "accepted"
            rec["reason"] = ""
            if tx is not None:
                rec.update(transaction_summary(tx))
        else:
            reason = ev.result.reason.value
            rec["verdict"] = "error" if ev.result.reason in ERROR_REASONS else "refused"
            rec["reason"] = reason
        self.publish("presentation", rec)

    def rights_changed(self, tx: TransactionView) -> None:
        self.publish("transaction", {"action": "rights", **transaction_summary(tx)})

    def transaction_changed(self, tx: TransactionView, action: str, **extra: Any) -> None:
        if self.metrics is not None:
            self.metrics.count_transaction(action)
        self.publish("transaction", {"action": action, **transaction_summary(tx), **extra})

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        with self._lock:
            item = (next(self._ids), kind, data)
            self._recent.append(item)
            subs = list(self._subs)
        for s in subs:
            try:
                s.queue.put_nowait(item)
            except queue.Full:
                log.warning("event client too slow: dropped")
                self.unsubscribe(s)

    # --- consumers -------------------------------------------------------------------------

    def subscribe(self, last_id: int | None = None) -> Subscription:
        s = Subscription()
        with self._lock:
            if last_id is not None:
                for item in self._recent:
                    if item[0] > last_id:
                        s.queue.put_nowait(item)
            self._subs.append(s)
        return s

    def unsubscribe(self, s: Subscription) -> None:
        with self._lock:
            if s in self._subs:
                self._subs.remove(s)
        if not s.closed:
            s.closed = True
            # Wakes the client's thread; a full queue is read until `closed` is seen.
            with contextlib.suppress(queue.Full):
                s.queue.put_nowait(None)

    def close(self) -> None:
        with self._lock:
            subs = list(self._subs)
        for s in subs:
            self.unsubscribe(s)


def transaction_summary(tx: TransactionView) -> dict[str, Any]:
    """No names, no NIR: the rights are statuses by person index."""
    return {"transaction": tx.id, "state": str(tx.state), "people": len(tx.people),
            "chosen": tx.chosen,
            "invoice_no": tx.sheet.invoice_no if tx.sheet else None,
            "rights": [r.status for r in tx.rights],
            "rights_service": tx.rights_service,
            "rights_basis": tx.sheet.rights.status if tx.sheet and tx.sheet.rights else None}
