"""The transactions store on PostgreSQL, shared by the counters of a pharmacy (issue 17).

The same `TransactionStore`, queries and sealing (AES-GCM bound to the transaction id, the key
a file on each counter PC) on a psycopg connection: a transaction opened at one counter can be
read, chosen for and dispensed at another. Migrations are numbered as for SQLite
(`schema.SERVER_SCHEMA`), run under the migrations' advisory lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from comptoir.storage.postgres import PostgresDialect, adapt, connector, lock_id

from .billing_link import Biller
from .store import TransactionStore

DIALECT = PostgresDialect("transactions")


def open_store(
    url: str,
    key: bytes | str | Path,
    biller: Biller | None = None,
    *,
    password_file: str | Path | None = None,
    **options: Any,
) -> TransactionStore:
    connect = connector(url, password_file=password_file, name="comptoir-transactions")
    conn = connect()
    try:
        # Two daemons starting at once: one migrates, the other then finds it done.
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_id("comptoir.migrations"),))
        try:
            return TransactionStore(Path("postgresql-transactions"), key, biller,
                                    db=adapt(conn, connect), dialect=DIALECT, **options)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id("comptoir.migrations"),))
    except BaseException:
        conn.close()
        raise
