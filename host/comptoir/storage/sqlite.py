"""The SQLite backend: how every store opens its file, and the SQLite dialect.

Autocommit mode (isolation_level=None): stores open their transactions themselves, IMMEDIATE,
so two writers never both read and then write the same counters. Write-ahead log. Deleted
content is zeroed in the file (secure_delete), not left in free pages: purged personal data,
rewritten rows and dropped clear-text tables leave nothing behind once checkpointed.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .backend import Connection


@dataclass(frozen=True, slots=True)
class SqliteDialect:
    name: str = "sqlite"
    placeholder: str = "?"
    begin_write: str = "BEGIN IMMEDIATE"
    returning: bool = sqlite3.sqlite_version_info >= (3, 35)

    def read_version(self, db: Connection) -> int:
        # The file header's user_version field: what every store's existing files use.
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def write_version(self, db: Connection, version: int) -> None:
        db.execute(f"PRAGMA user_version = {int(version)}")


SQLITE = SqliteDialect()


def open_sqlite(
    path: str | Path,
    *,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    timeout: float = 30.0,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """Open (creating) a store's database in autocommit, WAL and secure_delete mode.
    synchronous=FULL: a commit survives a power cut, not only a crash."""
    _create_private(Path(path))
    db = sqlite3.connect(str(path), isolation_level=None, timeout=timeout,
                         check_same_thread=check_same_thread)
    try:
        if db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            raise sqlite3.OperationalError(f"{path}: WAL mode refused")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA secure_delete=ON")
    except BaseException:
        db.close()
        raise
    return db


def _create_private(path: Path) -> None:
    """A new database file is the service account's only (0600), whatever the umask: SQLite
    gives its -wal and -shm files the database file's mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def checkpoint(db: sqlite3.Connection) -> bool:
    """Copy the WAL into the database and truncate it to nothing (after a purge, the WAL
    still holds the pages as they were). Returns False when a reader kept it from finishing."""
    busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return not busy
