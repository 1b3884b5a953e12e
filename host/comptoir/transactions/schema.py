"""The transactions database's schema steps (run by `comptoir.storage.migrate`)."""

from __future__ import annotations

from typing import Any

from comptoir.storage import Schema

# Step 1 was released without a version number (files at version 0 may already have it, hence
# IF NOT EXISTS); step 2 adds the rights basis, which such files may have got at open.
SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS tx (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,          -- unix seconds
    updated_at REAL NOT NULL,
    presentation_id TEXT NOT NULL,     -- hex, as the verifier saw it
    board_id TEXT NOT NULL,
    port TEXT NOT NULL,
    channel TEXT NOT NULL,
    people INTEGER NOT NULL,
    chosen INTEGER,                    -- person index, NULL until chosen
    invoice_no INTEGER,
    finess TEXT,
    sealed BLOB                        -- AES-GCM(credential); NULL once purged
);
CREATE INDEX IF NOT EXISTS tx_state ON tx (state, updated_at);
"""
# The rights basis of a dispensed transaction's care sheet (added after the first schema:
# an older file gets the columns at open). No personal data: a status, a reason, a source, a time.
RIGHTS_COLUMNS = (("rights_status", "TEXT"), ("rights_reason", "TEXT"),
                  ("rights_source", "TEXT"), ("rights_as_of", "INTEGER"))


def _add_rights_columns(db: Any) -> None:
    have = {r[1] for r in db.execute("PRAGMA table_info(tx)")}
    for name, kind in RIGHTS_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE tx ADD COLUMN {name} {kind}")


SCHEMA = Schema((SCHEMA_1, _add_rights_columns))
# The same steps for a database server (PostgreSQL), numbered the same: step 2 in SQL there.
SERVER_SCHEMA = Schema((SCHEMA_1, "ALTER TABLE tx " + ", ".join(
    f"ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in RIGHTS_COLUMNS)))
