"""The seam between the stores and a database engine.

A store writes its queries with `?` placeholders and opens its write transactions with
`dialect.begin_write`; the schema version lives where the dialect keeps it. Today only SQLite
implements this (`sqlite.SQLITE`). A PostgreSQL backend (the next step) brings a `Dialect`
whose `placeholder` is `%s` (queries are rewritten once, at preparation), whose write
transaction is `BEGIN` plus a row or advisory lock (SQLite's IMMEDIATE takes the database's
write lock up front; PostgreSQL locks what it touches), which reads `RETURNING` natively (SQLite
has it from 3.35, so stores may use it on both), and which keeps the version in a
`schema_version` table instead of SQLite's header field.
"""

from __future__ import annotations

from typing import Any, Protocol


class Connection(Protocol):
    """What the stores use of a DB-API connection (sqlite3's, in autocommit mode)."""

    @property
    def in_transaction(self) -> bool: ...
    # The cursor is the engine's own (DB-API: fetchone, fetchall, rowcount, description).
    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...
    def executemany(self, sql: str, parameters: Any, /) -> Any: ...
    def close(self) -> None: ...


class Dialect(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def placeholder(self) -> str:
        """The parameter marker the engine takes: "?" (SQLite) or "%s"."""
    @property
    def begin_write(self) -> str:
        """Opens a transaction that holds the write lock from its start."""
    @property
    def returning(self) -> bool:
        """INSERT/UPDATE ... RETURNING is understood."""

    def read_version(self, db: Connection) -> int: ...
    def write_version(self, db: Connection, version: int) -> None: ...
