"""What ends a transaction without the counter asking: open ones expire after their TTL,
finished ones lose their sealed personal data after retention, and a ready one whose care
sheet is in the billing journal (the truth for billing) is finished from it. The base of
`TransactionStore` (whose own module holds the counter's steps: open, choose, dispense)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from comptoir.billing import CareSheet
from comptoir.storage import SQLITE, Dialect, checkpoint
from comptoir.tokens.model import Verified

from .billing_link import Biller
from .errors import reachable
from .model import State, TransactionView
from .rights_desk import RightsDesk

log = logging.getLogger("comptoir.transactions")


class ExpiryAndRecovery:
    # Set by TransactionStore.__init__; declared here for the type checker.
    db: Any
    dialect: Dialect
    biller: Biller | None
    rights: RightsDesk | None
    clock: Callable[[], float]
    open_ttl_s: float
    retention_s: float
    on_recovered: Callable[[TransactionView], None] | None
    _lock: threading.RLock
    _live: dict[str, Verified]
    _wal_pending: bool

    def get(self, tx_id: str) -> TransactionView:
        raise NotImplementedError  # TransactionStore's

    @reachable
    def purge(self) -> tuple[int, int]:
        """Cancel open transactions older than the TTL; drop the personal data of finished ones
        past retention. Returns (expired, purged)."""
        now = self.clock()
        recovered: list[str] = []
        with self._lock:
            expired = [r[0] for r in self.db.execute(
                "SELECT id FROM tx WHERE state IN (?, ?) AND updated_at <= ?",
                (State.AWAITING_BENEFICIARY, State.READY, now - self.open_ttl_s))]
            for tx_id in expired:
                # A care sheet may be in the journal (the truth for billing) for a transaction
                # this database could not mark dispensed (a full disk, then no retry): finish
                # it, never cancel a billed transaction.
                sheet = self.biller.sheet(tx_id) if self.biller is not None else None
                if sheet is not None:
                    self._finish_from_journal(tx_id, sheet, now)
                    recovered.append(tx_id)
                else:
                    self.db.execute("UPDATE tx SET state=?, updated_at=? WHERE id=?",
                                    (State.CANCELLED, now, tx_id))
                self._live.pop(tx_id, None)
                if self.rights is not None:
                    self.rights.forget(tx_id)
            cur = self.db.execute(
                "UPDATE tx SET sealed=NULL WHERE state IN (?, ?) AND sealed IS NOT NULL "
                "AND updated_at <= ?", (State.DISPENSED, State.CANCELLED, now - self.retention_s))
            if cur.rowcount or self._wal_pending:
                self._erase_wal()
        self._tell_recovered(recovered)
        return len(expired), cur.rowcount

    # --- a care sheet in the journal that this database does not know of ------------------

    def _finish_from_journal(self, tx_id: str, sheet: CareSheet, now: float) -> None:
        """The billing journal (the truth for billing) has this transaction's care sheet, but
        this database still says ready: a crash, or a full disk, between the journal's commit
        and the update. Under the lock."""
        self.db.execute(
            "UPDATE tx SET state=?, invoice_no=?, finess=?, updated_at=? WHERE id=? AND state=?",
            (State.DISPENSED, sheet.invoice_no, sheet.finess, now, tx_id, State.READY))
        self._live.pop(tx_id, None)
        if self.rights is not None:
            self.rights.forget(tx_id)
        log.warning("transaction found billed in the journal: marked dispensed",
                    extra={"transaction": tx_id, "invoice": sheet.invoice_no})

    @reachable
    def recover_billed(self) -> list[str]:
        """At start: finish every ready transaction whose care sheet is in the journal (and
        tell `on_recovered`). Returns their ids."""
        if self.biller is None:
            return []
        recovered = []
        with self._lock:
            ready = [r[0] for r in self.db.execute("SELECT id FROM tx WHERE state=?",
                                                   (State.READY,))]
            for tx_id in ready:
                sheet = self.biller.sheet(tx_id)
                if sheet is not None:
                    self._finish_from_journal(tx_id, sheet, self.clock())
                    recovered.append(tx_id)
        self._tell_recovered(recovered)
        return recovered

    def _tell_recovered(self, ids: list[str]) -> None:
        if self.on_recovered is None:
            return
        for tx_id in ids:
            try:
                self.on_recovered(self.get(tx_id))
            except Exception:
                log.exception("telling of a recovered care sheet failed")

    def _erase_wal(self) -> None:
        """The WAL still holds the pages as they were before the purge (the sealed data, which
        the key opens): copy the new pages into the database and truncate the WAL to nothing,
        so that no file (a live backup included) keeps a purged person. A database server
        keeps its own log (its vacuum and WAL recycling are its administrator's)."""
        if self.dialect is not SQLITE:
            return
        self._wal_pending = not checkpoint(self.db)
        if self._wal_pending:
            log.warning("purged data still in the WAL: a reader held it; erased at the next "
                        "purge")
