"""The billing journal: SQLite, the single source of truth for care sheets, lots and exports.

Write-ahead log, synchronous=FULL (a commit survives a power cut, not only a crash), and every
change in one BEGIN IMMEDIATE transaction, so a process killed anywhere leaves either all of a
change or none of it:
* record(): the sheet row, its invoice number and, if the lot is full, the lot's closing;
* close_lot(): the lot row with its hash, and the assignment of every open sheet to it.
A sheet has one `lot` column, so it is in at most one lot; verify() shows it is in exactly one
once closed. Recording a transaction id again returns the first sheet (a daemon that crashed
before learning whether its commit happened simply records again).

Personal data is sealed at rest (schema 2): each sheet's canonical JSON and B2 records (the
NIR, birth date and ranks, and everything rendered from them) are one AES-256-GCM blob bound
to its row (FINESS, invoice number, transaction id); the person key and the input digest are
keyed HMACs (crypto.py). Only the CSV row (no personal data), amounts, numbers and dates are in
clear. A schema-1 journal (texts in clear) is sealed once, in one transaction, when opened.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from comptoir.storage import (
    SQLITE,
    Connection,
    Dialect,
    Schema,
    load_or_create_key,
    migrate,
    open_sqlite,
    write_failed,
    write_transaction,
)

from . import crashpoints
from .crypto import InvalidTag, KeyFileError, SheetCipher, aad_prefix, default_key_path, join_texts
from .digests import _request_parts, _v1_input_digest, _v1_person_key, input_digest, person_key
from .errors import IntegrityError, JournalError, StorageFull
from .journal_schema import SCHEMA, SCHEMA_VERSION, migrate_v1
from .model import CareSheet, Dispensation, Lot
from .pricing import build_care_sheet, mask
from .render import GENESIS_HASH, lot_hash, sheet_from_json, sheet_texts

log = logging.getLogger("comptoir.billing")

# Read by the tests and the billing benchmark from here, where they always were.
__all__ = ["SCHEMA", "SCHEMA_VERSION", "Journal", "_v1_input_digest", "_v1_person_key",
           "input_digest", "person_key"]

MAX_INVOICE = 999_999_999  # 9 digits in B2
LOT_ROWS = (
    "SELECT invoice_no, transaction_id, sealed, CAST(csv AS BLOB) FROM sheet "
    "WHERE finess=? AND lot=? ORDER BY seq"
)
OPEN_ROWS = (
    "SELECT invoice_no, transaction_id, sealed, CAST(csv AS BLOB) FROM sheet "
    "WHERE finess=? AND lot IS NULL ORDER BY seq"
)
SEAL_PROBLEM = "sealed texts do not open (altered, moved from another row, or another key)"
LOT_COLUMNS = (
    "finess, seq, count, first_invoice, last_invoice, opened_at, closed_at, total, amo, amc, "
    "patient, franchise, prev_hash, hash"
)




class Journal:
    def __init__(
        self,
        path: str | Path,
        *,
        key: bytes | str | Path | None = None,
        create_key: bool = True,
        lot_size: int = 1000,
        lot_max_age: int = 24 * 3600,
        clock: Callable[[], float] = time.time,
        db: Connection | None = None,
        dialect: Dialect = SQLITE,
    ) -> None:
        """`key`: the billing key file (default: keys/billing.key beside the journal, see
        crypto.default_key_path), created 0600 if missing unless `create_key` is false, or
        the 32 key bytes themselves. A key file others can read, or one that is not this
        journal's key, is refused (KeyFileError naming the file). `db` and `dialect`: another
        backend's connection (`journal_pg.open_journal`); `path` then only names it."""
        if lot_size < 1:
            raise ValueError("lot_size must be at least 1")
        self.path = Path(path)
        self.lot_size = lot_size
        self.lot_max_age = lot_max_age
        self.clock = clock
        if isinstance(key, bytes):
            self.key_path: Path | None = None
            self.cipher = SheetCipher(key)
        else:
            self.key_path = Path(key) if key is not None else default_key_path(self.path)
            self.cipher = SheetCipher(load_or_create_key(self.key_path, create=create_key))
        # Transactions are opened explicitly, IMMEDIATE, so two processes never both
        # read-then-write the same counters; secure_delete: the migration's dropped clear texts
        # and rewritten rows leave nothing behind.
        self.dialect = dialect
        self.db: Any = open_sqlite(self.path) if db is None else db
        try:
            self._open_schema()
        except BaseException:
            self.db.close()
            raise

    def _key_name(self) -> str:
        return f"key file {self.key_path}" if self.key_path else "the key given"

    def _open_schema(self) -> None:
        db = self.db
        found = self._migrate()
        with self.write():
            check = self.cipher.key_check()
            row = db.execute("SELECT value FROM meta WHERE name='key_check'").fetchone()
            if row is None:
                if db.execute("SELECT 1 FROM sheet LIMIT 1").fetchone():
                    raise JournalError(f"billing journal {self.path}: sealed sheets but no "
                                       "key check; run verify")
                db.execute("INSERT INTO meta VALUES ('key_check', ?)", (check,))
            elif bytes(row[0]) != check:
                raise KeyFileError(f"{self._key_name()} is not the key of the billing journal "
                                   f"{self.path} (its sheets were sealed with another key)")
        if found == 1:
            # The clear texts are zeroed in the file (secure_delete) once checkpointed; the
            # write-ahead log that held them is emptied.
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            log.warning("billing journal sealed (schema 1 -> 2)",
                        extra={"sheets": self.count_sheets()})

    def _migrate(self) -> int:
        """Schema 1: texts and person key in clear (released before these steps were kept, so
        a new journal is made at the latest schema at once); 2: sealed, migrated on open."""
        def too_new(found: int, ours: int) -> JournalError:
            return JournalError(f"billing journal {self.path} has schema {found}, newer "
                                f"than this program's {ours}")
        try:
            schema = Schema((SCHEMA, lambda db: migrate_v1(db, self.cipher)), fresh=SCHEMA)
            assert schema.version == SCHEMA_VERSION
            return migrate(self.db, schema, too_new=too_new, dialect=self.dialect)
        except sqlite3.Error as e:
            if write_failed(e):
                raise StorageFull(f"billing journal {self.path}: schema not migrated: {e} "
                                  "(disk full or write failed): free space, then retry") from e
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(self, what: str = "change") -> Iterator[Any]:
        """One IMMEDIATE transaction: committed whole, or nothing of it kept. A disk full or
        a failed write (at any statement or at the commit) raises StorageFull naming `what`."""
        try:
            with write_transaction(self.db, self.dialect):
                yield self.db
        except BaseException as e:
            if write_failed(e):
                raise StorageFull(
                    f"billing journal {self.path}: {what} not recorded: {e} (disk full or "
                    "write failed); nothing of it was kept: free space, then retry") from e
            raise

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
        ds = list(ds)
        ids = ", ".join(str(d.transaction.transaction_id) for d in ds[:3])
        what = f"care sheet of transaction {ids}" + (f" (and {len(ds) - 3} more)"
                                                     if len(ds) > 3 else "")
        with self.write(what):
            sheets = [self._record_one(d, t) for d in ds]
        crashpoints.hit("record.committed")
        for s in sheets:
            log.debug("recorded %s", mask(s))
        return sheets

    def _record_one(self, d: Dispensation, now: int) -> CareSheet:
        db = self.db
        tx_id = d.transaction.transaction_id
        key = self.cipher.person_key(d.transaction.patient)
        digest = self.cipher.digest(_request_parts(d, key))
        if isinstance(tx_id, str):
            row = db.execute(
                "SELECT input_digest, finess, invoice_no, sealed FROM sheet "
                "WHERE transaction_id=?", (tx_id,)
            ).fetchone()
            if row:
                stored = row[0]
                same = (stored[3:] == _v1_input_digest(d) if stored.startswith("v1:")
                        else stored == digest)
                if not same:
                    raise JournalError(f"transaction {tx_id} was already billed differently")
                return sheet_from_json(self._open_one(row[1], row[2], tx_id, row[3]))
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
        sealed = self.cipher.seal(sheet.finess, invoice, sheet.transaction_id,
                                  join_texts(body, b2))
        db.execute(
            "INSERT INTO sheet (transaction_id, input_digest, finess, invoice_no, recorded_at, "
            "person_key, year, total, amo, amc, patient, franchise, lot, sealed, csv) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
            (tx_id, digest, sheet.finess, invoice, now, key, year, sheet.total, sheet.amo,
             sheet.amc, sheet.patient, sheet.franchise, sealed, csv),
        )
        db.execute(
            "UPDATE pharmacy SET next_invoice=?, open_count=?, "
            "open_since=COALESCE(open_since, ?) WHERE finess=?",
            (invoice + 1, open_count + 1, now, sheet.finess),
        )
        if sheet.franchise:
            db.execute(
                "INSERT INTO franchise_year VALUES (?, ?, ?) ON CONFLICT (person_key, year) "
                "DO UPDATE SET charged = franchise_year.charged + excluded.charged",
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
        with self.write(f"lot closing of pharmacy {finess}"):
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
            with self.write(f"lot closing of pharmacy {finess}"):
                lot = self._close(finess, t)
            if lot:
                closed.append(lot)
        return closed

    def _close(self, finess: str, now: int) -> Lot | None:
        db = self.db
        rows = db.execute(
            "SELECT invoice_no, recorded_at, total, amo, amc, patient, franchise, "
            "transaction_id, sealed, CAST(csv AS BLOB) "
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
        texts = self._open_rows(finess, [(r[0], *r[7:]) for r in rows],
                                f"pharmacy {finess}: open sheets")
        lot = replace(lot, hash=lot_hash(lot, texts))
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
        reads pages in place instead of one pread() copy per page. Back to plain reads after.
        Nothing to do on a database server."""
        if self.dialect.name != SQLITE.name:
            yield
            return
        size = self.path.stat().st_size if self.path.exists() else 0
        self.db.execute(f"PRAGMA mmap_size={max(size, 1) * 2}")
        try:
            yield
        finally:
            self.db.execute("PRAGMA mmap_size=0")

    def lot_rows(
        self, finess: str, seq: int, bad: list[int] | None = None
    ) -> list[tuple[bytes, bytes, bytes]]:
        """(body, b2, csv) of each sheet of a lot, in invoice order, as the bytes the files
        hold (all three are ASCII): no decoding on the way out, no encoding on the way in.
        A sealed blob that does not open raises IntegrityError naming the lot and invoice;
        with `bad` a list, its invoice number is appended there and the row left out."""
        return self._open_rows(finess, self._fetch(LOT_ROWS, (finess, seq)),
                               f"lot {finess}/{seq}", bad)

    def open_rows(self, finess: str, bad: list[int] | None = None
                  ) -> list[tuple[bytes, bytes, bytes]]:
        """The same for the pharmacy's open sheets (not in a lot yet)."""
        return self._open_rows(finess, self._fetch(OPEN_ROWS, (finess,)),
                               f"pharmacy {finess}: open sheets", bad)

    def _fetch(self, sql: str, args: tuple[object, ...]) -> list[Any]:
        """Many sealed rows: on PostgreSQL in the binary format (`PgConnection.fetch_binary`),
        the same rows as a plain fetch."""
        fetch = getattr(self.db, "fetch_binary", None)
        return fetch(sql, args) if fetch is not None else self.db.execute(sql, args).fetchall()

    def _open_rows(
        self,
        finess: str,
        rows: list[tuple[int, str, bytes, bytes]],
        where: str,
        bad: list[int] | None = None,
    ) -> list[tuple[bytes, bytes, bytes]]:
        # The export's inner loop: one AES-GCM open per sheet (~3 us), nothing else.
        open_blob = self.cipher.sealer.open
        prefix = aad_prefix(finess)  # row_aad, inlined
        out = []
        for invoice, tx_id, blob, csv in rows:
            try:
                plain = open_blob(b"%s%d|%s" % (prefix, invoice, tx_id.encode()), blob)
            except (InvalidTag, TypeError, ValueError, AttributeError):
                if bad is None:
                    raise IntegrityError(f"{where}: invoice {invoice}: {SEAL_PROBLEM}; "
                                         "run verify") from None
                bad.append(invoice)
                continue
            body, _, b2 = plain.partition(b"\n")
            out.append((body, b2, csv))
        return out

    def _open_one(self, finess: str, invoice: int, tx_id: str, blob: bytes) -> str:
        try:
            plain = self.cipher.open(finess, invoice, tx_id, blob)
        except (InvalidTag, TypeError, ValueError, AttributeError):
            raise IntegrityError(f"invoice {finess}/{invoice}: {SEAL_PROBLEM}; "
                                 "run verify") from None
        return plain.partition(b"\n")[0].decode()

    def open_sheets(self) -> dict[str, tuple[int, int | None]]:
        """finess -> (sheets not in a lot yet, recorded_at of the oldest)."""
        return {
            r[0]: (r[1], r[2])
            for r in self.db.execute("SELECT finess, open_count, open_since FROM pharmacy")
        }

    def sheet(self, transaction_id: str) -> CareSheet | None:
        row = self.db.execute(
            "SELECT finess, invoice_no, sealed FROM sheet WHERE transaction_id=?",
            (transaction_id,)
        ).fetchone()
        return sheet_from_json(self._open_one(row[0], row[1], transaction_id, row[2])) \
            if row else None

    def count_sheets(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM sheet").fetchone()[0])


def _lot_row(lot: Lot) -> tuple[object, ...]:
    return (lot.finess, lot.seq, lot.count, lot.first_invoice, lot.last_invoice, lot.opened_at,
            lot.closed_at, lot.total, lot.amo, lot.amc, lot.patient, lot.franchise,
            lot.prev_hash, lot.hash)
