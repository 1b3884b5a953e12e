"""The rights cache on PostgreSQL, shared by the counters of a pharmacy (issue 17): a family
asked by one counter is fresh at the others.

The same `RightsStore`, queries and sealing (AES-GCM, the row's lookup key as associated data,
the key a file on each counter PC) on a psycopg connection. Each write takes the cache's
advisory lock first (as SQLite's BEGIN IMMEDIATE takes the file's): two counters merging
snapshots of one family never both read and then write its roster. Migrations are numbered as
for SQLite (`migrations.SCHEMA`), run under the migrations' advisory lock. Its tables (meta,
persons, means, rosters) are in a schema of their own, `comptoir_rights`: the billing journal,
in the same database, has a `meta` table too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from comptoir.storage.postgres import PostgresDialect, adapt, connector, lock_id

from .crypto import RowCipher
from .store import RightsStore

DIALECT = PostgresDialect("rights", serialized=True)
SCHEMA = "comptoir_rights"
NAME = Path("postgresql-rights")


def open_store(
    url: str,
    cipher: RowCipher,
    *,
    password_file: str | Path | None = None,
    **options: Any,
) -> RightsStore:
    """The rights cache in the database at `url` (its tables made or migrated on first use).
    `options` as for RightsStore; the SQLite file's own (integrity, max_pages, durable) are
    ignored."""
    for sqlite_only in ("integrity", "max_pages", "durable"):
        options.pop(sqlite_only, None)
    connect = connector(url, password_file=password_file, name="comptoir-rights",
                        schema=SCHEMA)
    conn = connect()
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_id("comptoir.migrations"),))
        try:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            return RightsStore(NAME, cipher, db=adapt(conn, connect), dialect=DIALECT,
                               **options)
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id("comptoir.migrations"),))
    except BaseException:
        conn.close()
        raise
