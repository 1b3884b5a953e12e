"""The daemon subscriber that turns accepted presentations into transactions.

Each verified presentation opens a transaction (with a rights desk, the rights service is asked
in the background); then the event stream is told: the presentation with its transaction, or
the refusal, or "no room" when the transaction could not be stored. When the rights service
answers, the stream is told again: always after the presentation's event (one lock orders
both). The stream itself (http/feed.py) only turns these into records.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from comptoir.nfc_service import Presentation
from comptoir.tokens.model import Verified
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

    def _presentation(self, ev: Presentation) -> None:
        # The rights service is asked in the background when the transaction opens; its
        # `rights` event takes the order lock too, so it always comes after this one.
        with self._order:
            tx = None
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
            try:
                tx = self.store.get(tx_id)
            except TransactionError:
                return
            if tx.rights:  # still open
                self.stream.rights_changed(tx)
