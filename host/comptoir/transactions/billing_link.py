"""The transactions' link to billing: the billing journal on a thread of its own."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

from comptoir.billing import CareSheet, Dispensation, Lot

from .model import PersonRights, SheetRef


class Biller(Protocol):
    def record(self, d: Dispensation) -> CareSheet: ...
    def sheet(self, transaction_id: str) -> CareSheet | None: ...
    def lot_of(self, transaction_id: str) -> int | None: ...


class JournalBiller:
    """The billing journal on one dedicated thread: sqlite3 connections belong to the thread
    that opened them, and API requests each run on a thread of their own. `key`: the billing
    key file (the daemon passes paths.keys_dir/billing.key; default: keys/billing.key beside
    the journal) or the key bytes; a bad key file fails here, naming the file."""

    def __init__(self, path: str | Path, *, key: bytes | str | Path | None = None,
                 **journal_options: Any) -> None:
        journal_options["key"] = key
        self._jobs: queue.Queue[tuple[Callable[[Any], Any], Future[Any]] | None] = queue.Queue()
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(path, journal_options, ready),
                                        name="billing journal", daemon=True)
        self._thread.start()
        ready.result()

    def _run(self, path: str | Path, options: dict[str, Any], ready: Future[None]) -> None:
        from comptoir.billing import Journal

        try:
            journal = Journal(path, **options)
        except BaseException as e:
            ready.set_exception(e)
            return
        ready.set_result(None)
        while (job := self._jobs.get()) is not None:
            fn, fut = job
            try:
                fut.set_result(fn(journal))
            except BaseException as e:
                fut.set_exception(e)
        journal.close()

    def _call(self, fn: Callable[[Any], Any]) -> Any:
        fut: Future[Any] = Future()
        self._jobs.put((fn, fut))
        return fut.result()

    def record(self, d: Dispensation) -> CareSheet:
        sheet: CareSheet = self._call(lambda j: j.record(d))
        return sheet

    def sheet(self, transaction_id: str) -> CareSheet | None:
        found: CareSheet | None = self._call(lambda j: j.sheet(transaction_id))
        return found

    def lot_of(self, transaction_id: str) -> int | None:
        # The journal has no reader for this yet: a sheet's `lot` column, NULL while open.
        row = self._call(lambda j: j.db.execute(
            "SELECT lot FROM sheet WHERE transaction_id=?", (transaction_id,)).fetchone())
        return None if row is None or row[0] is None else int(row[0])

    def lots(self) -> list[Lot]:
        """Every closed lot, oldest first."""
        lots: list[Lot] = self._call(lambda j: j.lots())
        return lots

    def open_sheets(self) -> dict[str, tuple[int, int | None]]:
        """finess -> (care sheets not in a lot yet, when the oldest was recorded)."""
        found: dict[str, tuple[int, int | None]] = self._call(lambda j: j.open_sheets())
        return found

    def exports(self) -> list[tuple[str, int, str, str, int]]:
        """(finess, lot, kind, file name, exported_at) of every export file written."""
        rows = self._call(lambda j: j.db.execute(
            "SELECT finess, lot, kind, name, exported_at FROM export "
            "ORDER BY exported_at").fetchall())
        return [(str(f), int(n), str(k), str(name), int(at)) for f, n, k, name, at in rows]

    def close_due(self) -> list[Lot]:
        """Close every pharmacy's open lot older than the journal's lot_max_age."""
        lots: list[Lot] = self._call(lambda j: j.close_due())
        return lots

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=5)


def sheet_ref(biller: Biller, tx_id: str, row: dict[str, Any]) -> SheetRef:
    """A dispensed transaction's care sheet as the journal has it, with the rights basis its
    row recorded (no basis: the rights were not checked)."""
    full = biller.sheet(tx_id)
    lot = biller.lot_of(tx_id)
    basis = None
    if row.get("rights_status") is not None:
        basis = PersonRights(row["rights_status"], row["rights_reason"] or "",
                             row["rights_source"], row["rights_as_of"],
                             row["rights_status"] in ("fresh", "stale_ok"))
    if full is None:
        return SheetRef(row["invoice_no"], row["finess"], lot, 0, 0, 0, 0, 0, basis)
    return SheetRef(full.invoice_no, full.finess, lot, full.total, full.amo, full.amc,
                    full.patient, full.counter, basis)
