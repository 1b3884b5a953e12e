"""The daemon subscriber that turns accepted presentations into transactions.

Each verified presentation opens a transaction (with a rights desk, the rights service is asked
in the background); then the event stream is told: the presentation with its transaction, or
the refusal, or "no room" when the transaction could not be stored. When the rights service
answers, the stream is told again: always after the presentation's event (one lock orders
both). The stream itself (http/feed.py) only turns these into records.

`admit` opens the transaction before the board is given its verdict (the QR pipeline and the
NFC service call it, `comptoir run` wires it): a presentation verified while the shared
database went away before its transaction was stored is shown `error` ("shared database
unreachable"), not accepted with no transaction behind it (found by the multi-counter restart
test: the board said accepted, nothing was opened). Its Presentation event then finds the
transaction (or the failure) made for it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from comptoir.nfc_service import Presentation
from comptoir.tokens.model import Refused, Result, Verified
from comptoir.tokens.reasons import Reason
from comptoir.transactions import (
    NoRoom,
    StorageUnavailable,
    TransactionError,
    TransactionStore,
    TransactionView,
)

log = logging.getLogger("comptoir.api")  # the logger these messages always had


class Stream(Protocol):
    """What the opener tells the event stream (comptoir.http.feed.EventFeed)."""

    def presented(self, ev: Presentation, tx: TransactionView | None,
                  error: str | None = None) -> None: ...
    def rights_changed(self, tx: TransactionView) -> None: ...
    def transaction_changed(self, tx: TransactionView, action: str, **extra: Any) -> None: ...


class TransactionOpener:
    def __init__(self, store: TransactionStore | None, stream: Stream,
                 metrics: Any = None) -> None:
        self.store = store
        self.stream = stream
        self.metrics = metrics
        self._order = threading.Lock()  # a presentation's event before its rights' event
        # Opened (or failed) by `admit`, awaiting their Presentation event: (port, object id,
        # presentation id) -> the transaction, or the error code.
        self._admitted: dict[tuple[str, int, bytes], TransactionView | str] = {}
        self._unannounced: dict[str, bool] = {}  # tx id -> its rights answered meanwhile
        if store is not None:
            # A care sheet found in the billing journal for a transaction this database still
            # had as ready (a crash between the two): the software is told it is dispensed.
            store.on_recovered = lambda tx: stream.transaction_changed(tx, "dispensed",
                                                                       recovered=True)
            store.on_rights = self.rights_refreshed

    def on_event(self, ev: Any) -> None:
        """A daemon subscriber (runs on the daemon's event thread)."""
        if isinstance(ev, Presentation):
            self._presentation(ev)

    def admit(self, port: str, board_id: str, object_id: int, channel: str,
              result: Result) -> Result:
        """Before the verdict: a verified presentation's transaction is opened now; the result
        to show is a refusal `state_unavailable` when the shared database is away."""
        if not isinstance(result, Verified) or self.store is None:
            return result
        key = (port, object_id, result.presentation_id)
        with self._order:
            try:
                tx = self.store.create(result, board_id=board_id, port=port, channel=channel,
                                       on_rights=self.rights_refreshed)
            except (NoRoom, StorageUnavailable) as e:
                log.error("transaction not opened", extra={"why": str(e)})
                self._admitted[key] = e.code
                while len(self._admitted) > 1024:  # events lost (never: bounded anyway)
                    del self._admitted[next(iter(self._admitted))]
                if isinstance(e, StorageUnavailable):
                    return Refused(Reason.STATE_UNAVAILABLE)
                return result  # no room: as before, said on the event stream
            self._admitted[key] = tx
            self._unannounced[tx.id] = False
            return result

    def _presentation(self, ev: Presentation) -> None:
        # The rights service is asked in the background when the transaction opens; its
        # `rights` event takes the order lock too, so it always comes after this one.
        with self._order:
            tx = None
            admitted = None
            if isinstance(ev.result, Verified):
                admitted = self._admitted.pop(
                    (ev.port, ev.object_id, ev.result.presentation_id), None)
            if isinstance(admitted, str):
                self.stream.presented(ev, None, admitted)
                return
            if admitted is not None:
                tx = admitted
                if self.metrics is not None:
                    self.metrics.count_transaction("opened")
                self.stream.presented(ev, tx)
                if self._unannounced.pop(tx.id, False):
                    self._rights_changed(tx.id)
                return
            if isinstance(ev.result, Verified) and self.store is not None:
                try:
                    tx = self.store.create(ev.result, board_id=ev.board_id, port=ev.port,
                                           channel=ev.channel, on_rights=self.rights_refreshed)
                except (NoRoom, StorageUnavailable) as e:
                    # Verified, but no transaction could be stored (disk full, the shared
                    # database unreachable): the counter is told, the card is presented again
                    # once there is room or the server is back.
                    log.error("transaction not opened", extra={"why": str(e)})
                    self.stream.presented(ev, None, e.code)
                    return
                if self.metrics is not None:
                    self.metrics.count_transaction("opened")
            self.stream.presented(ev, tx)

    def rights_refreshed(self, tx_id: str) -> None:
        """The rights service answered (or failed) for an open transaction: the stream is told
        (runs on the rights worker's thread)."""
        assert self.store is not None
        with self._order:
            if tx_id in self._unannounced:  # its presentation's event is not out yet
                self._unannounced[tx_id] = True
                return
            self._rights_changed(tx_id)

    def _rights_changed(self, tx_id: str) -> None:
        assert self.store is not None
        try:
            tx = self.store.get(tx_id)
        except TransactionError:
            return
        if tx.rights:  # still open
            self.stream.rights_changed(tx)
