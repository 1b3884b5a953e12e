"""The rights cache's schema steps (run by `comptoir.storage.migrate`: numbered, each once,
with its version bump in one transaction). Never edit a released step: add one.

Nothing here is plaintext personal data: lookup keys are keyed hashes; rows are AES-GCM.
`obtained_at` is in clear so that status, counts and sync need not decrypt every row.
"""

from __future__ import annotations

import sqlite3

from comptoir.storage import SQLITE, Dialect, Schema
from comptoir.storage import migrate as run_migrations

from .errors import SchemaTooNew

STEPS: tuple[str, ...] = (
    # 1: one row per beneficiary; `family` groups the rows of one insured NIR.
    """
    CREATE TABLE meta (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE persons (
        lookup BLOB PRIMARY KEY,
        family BLOB NOT NULL,
        obtained_at INTEGER NOT NULL,
        row BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX persons_family ON persons(family);
    """,
    # 2: the state of presented means (phones): status list and opposition list.
    """
    CREATE TABLE means (cred BLOB PRIMARY KEY, row BLOB NOT NULL) WITHOUT ROWID;
    """,
    # 3: the member list of the freshest snapshot per family, so that "no longer a member"
    # is a fact that holds whatever the order snapshots arrive in.
    """
    CREATE TABLE rosters (family BLOB PRIMARY KEY, row BLOB NOT NULL) WITHOUT ROWID;
    """,
    # 4: families a counter's background sync is asking about now or asked about lately
    # (claims.py), so that the counters sharing a cache do not all ask for the same ones.
    """
    CREATE TABLE refresh_claims (
        family BLOB PRIMARY KEY,
        claimed_until INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
)
SCHEMA = Schema(STEPS)
VERSION = SCHEMA.version


def _too_new(found: int, ours: int) -> SchemaTooNew:
    return SchemaTooNew(f"schema version {found} is newer than this Comptoir ({ours})")


def migrate(db: sqlite3.Connection, *, target: int = VERSION, dialect: Dialect = SQLITE) -> int:
    """Bring the schema to `target`; returns the version found. `db` is in autocommit mode."""
    return run_migrations(db, SCHEMA, too_new=_too_new, target=target, dialect=dialect)
