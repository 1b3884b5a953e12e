"""The transactions' link to billing: the billing journal on a thread of its own."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

from comptoir.billing import CareSheet, Dispensation, Lot
from comptoir.tasks import JobQueue

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
                 opener: Callable[[], Any] | None = None, **journal_options: Any) -> None:
        """`opener`: opens the journal another way (on PostgreSQL: `journal_pg.open_journal`),
        on the journal's thread too."""
        from comptoir.billing import Journal

        journal_options["key"] = key
        self._worker: JobQueue[Callable[[], None]] = JobQueue(
            "billing journal", lambda job: job(), join_s=5.0)
        self._worker.start()
        self._journal: Any = None
        try:  # opened on the worker's thread: the connection belongs to it
            self._journal = self._call(
                lambda _: opener() if opener is not None else Journal(path, **journal_options))
        except BaseException:
            self._worker.stop()
            raise

    def _call(self, fn: Callable[[Any], Any]) -> Any:
        """fn(journal) on the journal's thread; its result, or its exception raised here."""
        fut: Future[Any] = Future()

        def job() -> None:
            try:
                fut.set_result(fn(self._journal))
            except BaseException as e:
                fut.set_exception(e)

        self._worker.put(job)
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
        self._worker.put(lambda: self._journal.close())  # after the jobs already given
        self._worker.stop()


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
