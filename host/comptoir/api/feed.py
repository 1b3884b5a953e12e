"""The event stream: daemon events turned into JSON records for /v1/events (server-sent
events), and the transactions that accepted presentations open.

What a record may hold: ports, board ids, channels, verdicts, reasons, transaction ids and
states, counts of people. Never a NIR and never a name: the dispensing software reads the
transaction (GET /v1/transactions/{id}) to show who is who.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import queue
import threading
from typing import Any

from comptoir.events import BoardDown, BoardRefused, BoardUp, PortLost
from comptoir.nfc_service import Presentation, TapFailed
from comptoir.tokens.model import Verified
from comptoir.transactions import NoRoom, TransactionError, TransactionStore, TransactionView

log = logging.getLogger("comptoir.api")

REPLAY = 256  # records kept for a client that reconnects with Last-Event-ID
QUEUE = 1024  # per client; a client this far behind is dropped (it reconnects and replays)


class Subscription:
    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[int, str, dict[str, Any]] | None] = queue.Queue(QUEUE)
        self.closed = False


class EventFeed:
    def __init__(self, store: TransactionStore | None = None, metrics: Any = None) -> None:
        self.store = store
        self.metrics = metrics
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._recent: collections.deque[tuple[int, str, dict[str, Any]]] = \
            collections.deque(maxlen=REPLAY)
        self._subs: list[Subscription] = []
        self._order = threading.Lock()  # a presentation's event before its rights' event
        if store is not None:
            # A care sheet found in the billing journal for a transaction this database still
            # had as ready (a crash between the two): the software is told it is dispensed.
            store.on_recovered = lambda tx: self.transaction_changed(tx, "dispensed",
                                                                     recovered=True)

    # --- producers -------------------------------------------------------------------------

    def on_event(self, ev: Any) -> None:
        """A daemon subscriber (runs on the daemon's event thread)."""
        if isinstance(ev, Presentation):
            self._presentation(ev)
        elif isinstance(ev, TapFailed):
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

    def _presentation(self, ev: Presentation) -> None:
        # The rights service is asked in the background when the transaction opens; its
        # `rights` event takes the order lock too, so it always comes after this one.
        with self._order:
            rec: dict[str, Any] = {"port": ev.port, "board_id": ev.board_id,
                                   "channel": ev.channel, "object_id": ev.object_id}
            if isinstance(ev.result, Verified):
                rec["verdict"] = "choose_beneficiary" if ev.result.beneficiaries else "accepted"
                rec["reason"] = ""
                if self.store is not None:
                    try:
                        tx = self.store.create(ev.result, board_id=ev.board_id, port=ev.port,
                                               channel=ev.channel,
                                               on_rights=self.rights_refreshed)
                    except NoRoom as e:
                        # Verified, but no transaction could be stored (disk full): the
                        # counter is told, the card is presented again once there is room.
                        log.error("transaction not opened", extra={"why": str(e)})
                        rec["verdict"], rec["reason"] = "error", NoRoom.code
                        self.publish("presentation", rec)
                        return
                    if self.metrics is not None:
                        self.metrics.count_transaction("opened")
                    rec.update(transaction_summary(tx))
            else:
                reason = ev.result.reason.value
                rec["verdict"] = "error" if reason == "internal_error" else "refused"
                rec["reason"] = reason
            self.publish("presentation", rec)

    def rights_refreshed(self, tx_id: str) -> None:
        """The rights service answered (or failed) for an open transaction: a `transaction`
        event with action `rights` (runs on the rights worker's thread)."""
        assert self.store is not None
        with self._order:
            try:
                tx = self.store.get(tx_id)
            except TransactionError:
                return
            if tx.rights:  # still open
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
