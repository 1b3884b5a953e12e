"""The billing journal on PostgreSQL, shared by every counter of a pharmacy (issue 17).

The same `Journal`, the same queries and the same sealing (AES-GCM bound to the row, the key a
file on each counter PC): only the connection and the dialect differ. Each write transaction
takes the journal's advisory lock first (`PostgresDialect(serialized=True)`), as SQLite's
BEGIN IMMEDIATE takes the file's, so care sheets are numbered per FINESS without gaps or
duplicates across counters, and a lot is closed by one daemon at a time (the sheets it takes
are the ones no other transaction can be adding meanwhile).

`export_lock` lets one daemon at a time export: a session advisory lock, released by the
server when its holder's connection ends (a daemon that dies hands it over by itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg

from comptoir.storage import Unreachable
from comptoir.storage.postgres import PostgresDialect, adapt, connector, lock_id

from .journal import Journal

STORE = "billing"
DIALECT = PostgresDialect(STORE, serialized=True)
_EXPORT_LOCK = lock_id("comptoir.billing.export")


def open_journal(
    url: str,
    *,
    key: bytes | str | Path,
    password_file: str | Path | None = None,
    **options: Any,
) -> Journal:
    """The billing journal in the database at `url` (its tables made or migrated on first
    use). `key` is the billing key file (or its bytes): the same on every counter PC."""
    connect = connector(url, password_file=password_file, name="comptoir-billing")
    conn = connect()
    try:
        return Journal(Path("postgresql-billing"), key=key, db=adapt(conn, connect),
                       dialect=DIALECT, **options)
    except BaseException:
        conn.close()
        raise


@contextmanager
def export_lock(journal: Journal) -> Iterator[bool]:
    """True while this daemon holds the right to export (False: another daemon is exporting
    now; try again later). Released at the end of the block or when the connection ends."""
    db = journal.db
    got = bool(db.execute("SELECT pg_try_advisory_lock(?)", (_EXPORT_LOCK,)).fetchone()[0])
    try:
        yield got
    finally:
        if got:
            # A connection gone took its lock with it: nothing left to release then.
            with suppress(psycopg.OperationalError, Unreachable):
                db.execute("SELECT pg_advisory_unlock(?)", (_EXPORT_LOCK,))


