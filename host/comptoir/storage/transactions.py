"""One write transaction, the same for every store: committed whole, or nothing of it kept."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .backend import Connection, Dialect
from .sqlite import SQLITE


@contextmanager
def write_transaction(db: Connection, dialect: Dialect = SQLITE) -> Iterator[Connection]:
    """Open a transaction that holds the write lock from its start (SQLite: IMMEDIATE, so two
    writers never both read and then write the same rows), commit it at the end of the block,
    roll it back on any error. The caller tells a failed write (`failures.write_failed`) from
    anything else."""
    db.execute(dialect.begin_write)
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        # SQLite rolls back by itself on a full disk or an I/O error: a second ROLLBACK would
        # fail ("no transaction is active") and hide the real error; and a failed COMMIT must
        # not leave the transaction open for the next BEGIN.
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
