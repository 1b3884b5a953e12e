"""The PostgreSQL backend: several counters' daemons sharing one server (issue 17).

Only imported when `storage.url` names a PostgreSQL server: psycopg is the `[postgres]` extra,
not part of the daemon's base install.

- `open_pool` gives a psycopg pool whose connections are in autocommit mode (stores open their
  transactions themselves, as with SQLite), checked before each use (a server restarted since
  is reconnected to by itself), with short timeouts: a counter whose server is unreachable
  says so within seconds instead of hanging.
- The password is never in the URL (the TOML is readable by the pharmacy's staff): it comes
  from a 0600 file (`storage.password_file`) or from libpq's own `PGPASSWORD`/`~/.pgpass`.
- `PostgresDialect` is the `backend.Dialect` of one store: `%s` placeholders, the schema
  version in a `schema_version` table (one row per store, all stores in one database).
- `adapt` wraps a psycopg connection into the `backend.Connection` the stores use (`?`
  placeholders rewritten once per query text).
- `migrate_locked` runs a store's numbered migrations under a session advisory lock: two
  daemons starting at once never both run a step.
- `unavailable(e)`: the server could not be reached or went away (not a bug, not a refusal).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo
from psycopg_pool import ConnectionPool

from .backend import Connection
from .errors import StorageError
from .migrations import Schema, migrate

CONNECT_TIMEOUT_S = 3  # per connection attempt (libpq's connect_timeout)
POOL_TIMEOUT_S = 3.0  # waiting for a pooled connection, the server being unreachable


class PasswordInUrl(StorageError):
    """The URL carries a password: it belongs in a file or in the environment."""


def check_url(url: str) -> None:
    """Refuse a URL that is not PostgreSQL's or that carries a password (never in the TOML)."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise StorageError("the URL must start with postgresql://")
    try:
        parts = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as e:
        raise StorageError(f"not a PostgreSQL URL ({e})") from None
    if parts.get("password"):
        raise PasswordInUrl("the URL carries a password: put it in storage.password_file "
                            "(mode 0600) or in the PGPASSWORD environment variable")


def read_password(path: str | Path) -> str:
    """The password file's first line; refused when others can read the file."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise StorageError(f"password file {path} is missing") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StorageError(f"password file {path} is readable by others (chmod 600 it)")
    return path.read_text(encoding="utf-8").splitlines()[0] if info.st_size else ""


def open_pool(
    url: str,
    *,
    password_file: str | Path | None = None,
    min_size: int = 1,
    max_size: int = 4,
    timeout: float = POOL_TIMEOUT_S,
    name: str = "comptoir",
) -> ConnectionPool:
    """A pool on `url`, opened without waiting: a daemon starts even when the server is down
    (its stores then answer `unavailable` errors until it is back)."""
    check_url(url)
    kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S,
                              "application_name": name}
    if password_file is not None:
        kwargs["password"] = read_password(password_file)
    elif "PGPASSWORD" in os.environ:
        kwargs["password"] = os.environ["PGPASSWORD"]
    pool = ConnectionPool(url, kwargs=kwargs, min_size=min_size, max_size=max_size,
                          timeout=timeout, check=ConnectionPool.check_connection,
                          open=False, name=name)
    pool.open(wait=False)
    return pool


def unavailable(e: BaseException) -> bool:
    """The server is unreachable or went away (refused connection, shutdown, pool timeout,
    a connection lost mid-transaction): the outcome of what was under way is unknown."""
    return isinstance(e, psycopg.OperationalError)


@lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """`?` placeholders (the stores' style) to psycopg's `%s`; a literal `%` doubled."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A psycopg connection (autocommit) as the stores' `backend.Connection`."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        if parameters:
            return self.raw.execute(to_pyformat(sql), tuple(parameters))  # type: ignore[arg-type]
        return self.raw.execute(sql.encode())  # no placeholders: sent as it is

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any:
        cur = self.raw.cursor()
        cur.executemany(to_pyformat(sql), [tuple(p) for p in parameters])  # type: ignore[arg-type]
        return cur

    def close(self) -> None:
        self.raw.close()


def adapt(conn: psycopg.Connection[Any]) -> Connection:
    return PgConnection(conn)


def lock_id(name: str) -> int:
    """A stable 64-bit advisory lock key for a name (the same on every daemon)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class PostgresDialect:
    """One store's dialect: its schema version is its row in `schema_version`."""

    store: str
    name: str = "postgresql"
    placeholder: str = "%s"
    begin_write: str = "BEGIN"
    returning: bool = True

    def read_version(self, db: Connection) -> int:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version "
                   "(store text PRIMARY KEY, version integer NOT NULL)")
        row = db.execute("SELECT version FROM schema_version WHERE store = ?",
                         (self.store,)).fetchone()
        return int(row[0]) if row else 0

    def write_version(self, db: Connection, version: int) -> None:
        db.execute("INSERT INTO schema_version (store, version) VALUES (?, ?) ON CONFLICT "
                   "(store) DO UPDATE SET version = EXCLUDED.version", (self.store, int(version)))


def migrate_locked(
    pool: ConnectionPool,
    store: str,
    schema: Schema,
    *,
    too_new: Callable[[int, int], Exception],
) -> int:
    """Bring `store`'s tables to `schema`'s version, one daemon at a time; -> version found."""
    with pool.connection() as conn:
        db = adapt(conn)
        key = lock_id("comptoir.migrations")
        db.execute("SELECT pg_advisory_lock(?)", (key,))
        try:
            return migrate(db, schema, too_new=too_new, dialect=PostgresDialect(store))
        finally:
            db.execute("SELECT pg_advisory_unlock(?)", (key,))


@contextmanager
def transaction(pool: ConnectionPool) -> Iterator[psycopg.Connection[Any]]:
    """One pooled connection in one transaction: committed at the end of the block, rolled
    back on any error (a connection that broke is discarded by the pool)."""
    with pool.connection() as conn, conn.transaction():
        yield conn
