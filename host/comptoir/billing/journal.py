"""The billing journal: SQLite, the single source of truth for care sheets, lots and exports.

Write-ahead log, synchronous=FULL (a commit survives a power cut, not only a crash), and every
change in one BEGIN IMMEDIATE transaction, so a process killed anywhere leaves either all of a
change or none of it:
* record(): the sheet row, its invoice number and, if the lot is full, the lot's closing;
* close_lot(): the lot row with its hash, and the assignment of every open sheet to it.
A sheet has one `lot` column, so it is in at most one lot; verify() shows it is in exactly one
once closed. Recording a transaction id again returns the first sheet (a daemon that crashed
before learning whether its commit happened simply records again).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from . import crashpoints
from .errors import JournalError
from .model import CareSheet, Dispensation, Lot, PatientRef
from .pricing import build_care_sheet, mask
from .render import GENESIS_HASH, lot_hash, sheet_from_json, sheet_texts

log = logging.getLogger("comptoir.billing")

SCHEMA_VERSION = 1
MAX_INVOICE = 999_999_999  # 9 digits in B2
SCHEMA = """
CREATE TABLE IF NOT EXISTS pharmacy (
    finess TEXT PRIMARY KEY,
    next_invoice INTEGER NOT NULL,
    open_count INTEGER NOT NULL,      -- sheets not yet in a lot
    open_since INTEGER                -- recorded_at of the oldest of them
);
CREATE TABLE IF NOT EXISTS sheet (
    seq INTEGER PRIMARY KEY,
    transaction_id TEXT NOT NULL UNIQUE,
    input_digest TEXT NOT NULL,
    finess TEXT NOT NULL,
    invoice_no INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    person_key TEXT NOT NULL,         -- hash of the patient identity, for the franchise cap
    year INTEGER NOT NULL,
    total INTEGER NOT NULL, amo INTEGER NOT NULL, amc INTEGER NOT NULL,
    patient INTEGER NOT NULL, franchise INTEGER NOT NULL,
    lot INTEGER,                      -- NULL while open
    body TEXT NOT NULL, b2 TEXT NOT NULL, csv TEXT NOT NULL,
    UNIQUE (finess, invoice_no)
);
CREATE INDEX IF NOT EXISTS sheet_lot ON sheet (finess, lot, seq);
CREATE TABLE IF NOT EXISTS franchise_year (   -- running total per person and year (the cap)
    person_key TEXT NOT NULL, year INTEGER NOT NULL, charged INTEGER NOT NULL,
    PRIMARY KEY (person_key, year)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lot (
    finess TEXT NOT NULL, seq INTEGER NOT NULL, count INTEGER NOT NULL,
    first_invoice INTEGER NOT NULL, last_invoice INTEGER NOT NULL,
    opened_at INTEGER NOT NULL, closed_at INTEGER NOT NULL,
    total INTEGER NOT NULL, amo INTEGER NOT NULL, amc INTEGER NOT NULL,
    patient INTEGER NOT NULL, franchise INTEGER NOT NULL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
    PRIMARY KEY (finess, seq)
);
CREATE TABLE IF NOT EXISTS export (
    finess TEXT NOT NULL, lot INTEGER NOT NULL, kind TEXT NOT NULL,
    name TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    exported_at INTEGER NOT NULL,
    PRIMARY KEY (finess, lot, kind)
);
"""
LOT_ROWS = (
    "SELECT CAST(body AS BLOB), CAST(b2 AS BLOB), CAST(csv AS BLOB) FROM sheet "
    "WHERE finess=? AND lot=? ORDER BY seq"
)
LOT_COLUMNS = (
    "finess, seq, count, first_invoice, last_invoice, opened_at, closed_at, total, amo, amc, "
    "patient, franchise, prev_hash, hash"
)


def person_key(ref: PatientRef) -> str:
    raw = f"{ref.insured_nir}|{ref.birth_date}|{ref.birth_rank}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def input_digest(d: Dispensation) -> str:
    """What identifies the request itself, to tell a retry from a different bill."""
    tx = d.transaction
    parts = (
        tx.transaction_id, person_key(tx.patient), tx.presentation.credential_id.hex(),
        d.finess, d.pharmacist_rpps, d.prescriber_rpps, str(d.prescribed_on),
        str(d.dispensed_on), int(d.nature), d.tiers_payant.amo, d.tiers_payant.amc,
        tuple((x.code, x.quantity, x.unit_price, x.base, x.rate, x.amo, x.amc, x.patient)
              for x in d.lines),
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()


class Journal:
    def __init__(
        self,
        path: str | Path,
        *,
        lot_size: int = 1000,
        lot_max_age: int = 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lot_size < 1:
            raise ValueError("lot_size must be at least 1")
        self.path = Path(path)
        self.lot_size = lot_size
        self.lot_max_age = lot_max_age
        self.clock = clock
        # Autocommit mode: transactions are opened explicitly, IMMEDIATE, so two processes
        # never both read-then-write the same counters.
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        with self.write():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _now(self, now: float | None) -> int:
        return int(self.clock() if now is None else now)

    # --- recording ---------------------------------------------------------------------

    def record(self, d: Dispensation, now: float | None = None) -> CareSheet:
        """Check, price, number and store one dispensation; returns its care sheet. Raises
        BillingError (bad fields) or JournalError (the transaction was billed differently)."""
        return self.record_many([d], now)[0]

    def record_many(self, ds: Iterable[Dispensation], now: float | None = None) -> list[CareSheet]:
        """Several dispensations in one transaction (one fsync): all or none."""
        t = self._now(now)
        with self.write():
            sheets = [self._record_one(d, t) for d in ds]
        crashpoints.hit("record.committed")
        for s in sheets:
            log.debug("recorded %s", mask(s))
        return sheets

    def _record_one(self, d: Dispensation, now: int) -> CareSheet:
        db = self.db
        tx_id = d.transaction.transaction_id
        digest = input_digest(d)
        if isinstance(tx_id, str):
            row = db.execute(
                "SELECT input_digest, body FROM sheet WHERE transaction_id=?", (tx_id,)
            ).fetchone()
            if row:
                if row[0] != digest:
                    raise JournalError(f"transaction {tx_id} was already billed differently")
                return sheet_from_json(row[1])
        key = person_key(d.transaction.patient)
        year = d.dispensed_on.year if isinstance(d.dispensed_on, dt.date) else 0
        row = db.execute(
            "SELECT charged FROM franchise_year WHERE person_key=? AND year=?", (key, year)
        ).fetchone()
        used = row[0] if row else 0
        sheet = build_care_sheet(d, franchise_used=used)
        state = db.execute(
            "SELECT next_invoice, open_count FROM pharmacy WHERE finess=?", (sheet.finess,)
        ).fetchone()
        if state is None:
            db.execute("INSERT INTO pharmacy VALUES (?, 1, 0, NULL)", (sheet.finess,))
            state = (1, 0)
        invoice, open_count = state
        if invoice > MAX_INVOICE:
            raise JournalError(f"pharmacy {sheet.finess}: 9-digit invoice numbers exhausted")
        sheet = replace(sheet, invoice_no=invoice)
        body, b2, csv = sheet_texts(sheet)
        db.execute(
            "INSERT INTO sheet (transaction_id, input_digest, finess, invoice_no, recorded_at, "
            "person_key, year, total, amo, amc, patient, franchise, lot, body, b2, csv) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
            (tx_id, digest, sheet.finess, invoice, now, key, year, sheet.total, sheet.amo,
             sheet.amc, sheet.patient, sheet.franchise, body, b2, csv),
        )
        db.execute(
            "UPDATE pharmacy SET next_invoice=?, open_count=?, "
            "open_since=COALESCE(open_since, ?) WHERE finess=?",
            (invoice + 1, open_count + 1, now, sheet.finess),
        )
        if sheet.franchise:
            db.execute(
                "INSERT INTO franchise_year VALUES (?, ?, ?) ON CONFLICT DO UPDATE "
                "SET charged = charged + excluded.charged",
                (key, year, sheet.franchise),
            )
        crashpoints.hit("record.inserted")
        if open_count + 1 >= self.lot_size:
            self._close(sheet.finess, now)
        return sheet

    # --- lots --------------------------------------------------------------------------

    def close_lot(self, finess: str, now: float | None = None) -> Lot | None:
        """Close the pharmacy's open sheets into its next lot now (None if there are none)."""
        t = self._now(now)
        with self.write():
            return self._close(finess, t)

    def close_due(self, now: float | None = None) -> list[Lot]:
        """Close every open lot older than lot_max_age."""
        t = self._now(now)
        due = [
            r[0]
            for r in self.db.execute(
                "SELECT finess FROM pharmacy WHERE open_count > 0 AND open_since <= ?",
                (t - self.lot_max_age,),
            )
        ]
        closed = []
        for finess in due:
            with self.write():
                lot = self._close(finess, t)
            if lot:
                closed.append(lot)
        return closed

    def _close(self, finess: str, now: int) -> Lot | None:
        db = self.db
        rows = db.execute(
            "SELECT invoice_no, recorded_at, total, amo, amc, patient, franchise, body, b2, csv "
            "FROM sheet WHERE finess=? AND lot IS NULL ORDER BY seq",
            (finess,),
        ).fetchall()
        if not rows:
            return None
        prev = db.execute(
            "SELECT seq, hash FROM lot WHERE finess=? ORDER BY seq DESC LIMIT 1", (finess,)
        ).fetchone()
        seq, prev_hash = (prev[0] + 1, prev[1]) if prev else (1, GENESIS_HASH)
        opened = min(r[1] for r in rows)
        lot = Lot(
            finess=finess, seq=seq, count=len(rows), first_invoice=rows[0][0],
            last_invoice=rows[-1][0], opened_at=opened, closed_at=max(now, opened),
            total=sum(r[2] for r in rows), amo=sum(r[3] for r in rows),
            amc=sum(r[4] for r in rows), patient=sum(r[5] for r in rows),
            franchise=sum(r[6] for r in rows), prev_hash=prev_hash, hash="",
        )
        lot = replace(lot, hash=lot_hash(lot, [r[7:] for r in rows]))
        db.execute(f"INSERT INTO lot ({LOT_COLUMNS}) VALUES ({','.join('?' * 14)})", _lot_row(lot))
        db.execute("UPDATE sheet SET lot=? WHERE finess=? AND lot IS NULL", (seq, finess))
        db.execute("UPDATE pharmacy SET open_count=0, open_since=NULL WHERE finess=?", (finess,))
        crashpoints.hit("lot.closed")
        log.info("lot closed", extra={"finess": finess, "lot": seq, "count": lot.count})
        return lot

    # --- reading -----------------------------------------------------------------------

    def pharmacies(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT finess FROM pharmacy ORDER BY finess")]

    def lots(self, finess: str | None = None) -> list[Lot]:
        where, args = ("WHERE finess=?", (finess,)) if finess else ("", ())
        return [
            Lot(*r)
            for r in self.db.execute(
                f"SELECT {LOT_COLUMNS} FROM lot {where} ORDER BY finess, seq", args
            )
        ]

    @contextmanager
    def bulk_reads(self) -> Iterator[None]:
        """Memory-map the database file while reading many lots (the export): SQLite then
        reads pages in place instead of one pread() copy per page. Back to plain reads after."""
        size = self.path.stat().st_size if self.path.exists() else 0
        self.db.execute(f"PRAGMA mmap_size={max(size, 1) * 2}")
        try:
            yield
        finally:
            self.db.execute("PRAGMA mmap_size=0")

    def lot_rows(self, finess: str, seq: int) -> list[tuple[bytes, bytes, bytes]]:
        """(body, b2, csv) of each sheet of a lot, in invoice order, as the bytes the files
        hold (all three are ASCII): no decoding on the way out, no encoding on the way in."""
        return self.db.execute(LOT_ROWS, (finess, seq)).fetchall()

    def open_sheets(self) -> dict[str, tuple[int, int | None]]:
        """finess -> (sheets not in a lot yet, recorded_at of the oldest)."""
        return {
            r[0]: (r[1], r[2])
            for r in self.db.execute("SELECT finess, open_count, open_since FROM pharmacy")
        }

    def sheet(self, transaction_id: str) -> CareSheet | None:
        row = self.db.execute(
            "SELECT body FROM sheet WHERE transaction_id=?", (transaction_id,)
        ).fetchone()
        return sheet_from_json(row[0]) if row else None

    def count_sheets(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM sheet").fetchone()[0])


def _lot_row(lot: Lot) -> tuple[object, ...]:
    return (lot.finess, lot.seq, lot.count, lot.first_invoice, lot.last_invoice, lot.opened_at,
            lot.closed_at, lot.total, lot.amo, lot.amc, lot.patient, lot.franchise,
            lot.prev_hash, lot.hash)
