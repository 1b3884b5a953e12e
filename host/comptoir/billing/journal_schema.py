"""The billing journal's schema and its migration step (run by `comptoir.storage.migrate`).

Schema 1 kept the texts and the person key in clear; it was released before the steps were kept
here, so a new journal is made at the latest schema at once (`Schema.fresh`) and step 1 exists
only as the version of files written then. Schema 2 seals them (`migrate_v1`, on open).
"""

from __future__ import annotations

import logging
import sqlite3

from comptoir.storage import run_step

from .crypto import SheetCipher, join_texts
from .errors import JournalError
from .model import PatientRef
from .render import sheet_from_json

log = logging.getLogger("comptoir.billing")

SCHEMA_VERSION = 2  # 1: texts and person key in clear; 2: sealed (migrated on open)
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
    input_digest TEXT NOT NULL,       -- keyed HMAC of the request ('v1:' + sha256 before 2)
    finess TEXT NOT NULL,
    invoice_no INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    person_key TEXT NOT NULL,         -- keyed HMAC of the patient identity (franchise cap)
    year INTEGER NOT NULL,
    total INTEGER NOT NULL, amo INTEGER NOT NULL, amc INTEGER NOT NULL,
    patient INTEGER NOT NULL, franchise INTEGER NOT NULL,
    lot INTEGER,                      -- NULL while open
    sealed BLOB NOT NULL,             -- AES-GCM of JSON, newline, B2, bound to the row
    csv TEXT NOT NULL,                -- the accounts row: no personal data
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
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS export (
    finess TEXT NOT NULL, lot INTEGER NOT NULL, kind TEXT NOT NULL,
    name TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    exported_at INTEGER NOT NULL,
    PRIMARY KEY (finess, lot, kind)
);
"""


def migrate_v1(db: sqlite3.Connection, cipher: SheetCipher) -> None:
    """Schema 1 -> 2, in one transaction: every sheet's texts sealed, person keys and
    franchise totals re-keyed with the HMAC, input digests kept as 'v1:' (a retry of a
    transaction recorded before is still recognised), and the key check stored with the
    sealed rows. Lots are untouched: the chain covers the plaintext, which does not
    change."""
    db.execute("DROP INDEX IF EXISTS sheet_lot")
    db.execute("ALTER TABLE sheet RENAME TO sheet_v1")
    run_step(db, SCHEMA)
    keys: dict[str, str] = {}
    rows = db.execute(
        "SELECT seq, transaction_id, input_digest, finess, invoice_no, recorded_at, "
        "person_key, year, total, amo, amc, patient, franchise, lot, body, b2, csv "
        "FROM sheet_v1 ORDER BY seq")
    insert = (
        "INSERT INTO sheet (seq, transaction_id, input_digest, finess, invoice_no, "
        "recorded_at, person_key, year, total, amo, amc, patient, franchise, lot, sealed, "
        "csv) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    while batch := rows.fetchmany(1000):
        out = []
        for (seq, tx_id, digest, finess, invoice, recorded, old_key, year, total, amo, amc,
             patient, franchise, lot, body, b2, csv) in batch:
            sheet = sheet_from_json(body)
            new_key = cipher.person_key(
                PatientRef(sheet.insured_nir, sheet.birth_date, sheet.birth_rank))
            if keys.setdefault(old_key, new_key) != new_key:
                raise JournalError(f"migration: invoice {finess}/{invoice}: person key "
                                   "differs from its sheet's; run verify")
            sealed = cipher.seal(finess, invoice, tx_id, join_texts(body, b2))
            out.append((seq, tx_id, "v1:" + digest, finess, invoice, recorded, new_key,
                        year, total, amo, amc, patient, franchise, lot, sealed, csv))
        db.executemany(insert, out)
    db.execute("DROP TABLE sheet_v1")
    totals = db.execute("SELECT person_key, year, charged FROM franchise_year").fetchall()
    db.execute("DELETE FROM franchise_year")
    lost = [t for t in totals if t[0] not in keys]
    db.executemany("INSERT INTO franchise_year VALUES (?, ?, ?)",
                   [(keys[k], y, c) for k, y, c in totals if k in keys])
    if lost:  # unreachable (no sheet of theirs) and keyed by the clear hash: dropped
        log.warning("migration: franchise totals without a sheet dropped",
                    extra={"count": len(lost)})
    db.execute("INSERT OR REPLACE INTO meta VALUES ('key_check', ?)",
               (cipher.key_check(),))
