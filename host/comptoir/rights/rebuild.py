"""Rebuilding the rights cache's file when it fails a check: the suspect file is moved aside
and the rows of it that still authenticate are carried into a fresh one (the cache asks the
service again for those families afterwards). `RightsCache` calls it at open and when a row
fails authentication in use.

The shared database on PostgreSQL is not moved aside by one counter: `repair` removes from it
the rows that fail authentication under the key (the same rows a rebuild would not carry over),
in one write transaction; the others stay, and the families of the removed rows are asked of
the service again at their next look-up or sync, as after a rebuild."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag

from comptoir.clock import now as clock_now

from . import codec
from .crypto import RowCipher
from .errors import CacheCorrupt, RowCorrupt, WrongKey
from .files import quarantine
from .model import RightsRecord
from .store import RightsStore

log = logging.getLogger("comptoir.rights")


@dataclass
class Rebuild:
    reason: str
    salvaged: int = 0  # person rows kept
    removed: int = 0  # rows removed from the shared database (PostgreSQL)
    quarantined: Path | None = None
    at: float = field(default_factory=clock_now)


def rebuild_store(
    path: Path,
    cipher: RowCipher,
    exc: CacheCorrupt,
    store_options: dict[str, Any],
    keep_corrupt: bool,
    stamp: int,
) -> tuple[RightsStore, Rebuild]:
    log.error("rights cache unusable, rebuilding it from the sources", extra={"why": str(exc)})
    moved = quarantine(path, stamp)
    rebuild = Rebuild(reason=str(exc), quarantined=moved if keep_corrupt else None)
    store = RightsStore(path, cipher, **store_options)
    if moved is not None and not isinstance(exc, WrongKey):
        records, sealed = salvage(moved, cipher)
        store.insert_new(records)
        store.put_sealed(sealed)
        rebuild.salvaged = len(records)
    if moved is not None and not keep_corrupt:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                moved.with_name(moved.name + suffix).unlink()
    log.error("rights cache rebuilt", extra={"salvaged_rows": rebuild.salvaged})
    return store, rebuild


_KEYS = {"persons": "lookup", "means": "cred", "rosters": "family"}


def salvage(path: Path, cipher: RowCipher) -> tuple[list[RightsRecord], list[tuple]]:
    """Rows of a suspect file that still authenticate under their own key: person records
    (whose identity must also hash to their key), and the sealed means and roster rows as
    they are (table, key, blob)."""
    records: dict[bytes, RightsRecord] = {}
    sealed: list[tuple] = []
    try:
        db = sqlite3.connect(str(path), isolation_level=None)
        db.execute("PRAGMA query_only=1")
    except sqlite3.Error:
        return [], []
    try:
        for table, key_column in _KEYS.items():
            try:
                cur = db.execute(f"SELECT {key_column}, row FROM {table}")
                while (row := cur.fetchone()) is not None:
                    key, blob = bytes(row[0]), bytes(row[1])
                    try:
                        plain = cipher.open(key, blob)
                    except InvalidTag:
                        continue
                    if table != "persons":
                        sealed.append((table, key, blob))
                        continue
                    with contextlib.suppress(ValueError):
                        rec = codec.decode(plain)
                        if cipher.lookup(rec.who.canonical()) == key:
                            records[key] = rec
            except sqlite3.Error:
                continue  # the rest of this table is unreadable
    finally:
        db.close()
    return list(records.values()), sealed


def repair(store: RightsStore, cipher: RowCipher, exc: RowCorrupt, stamp: int) -> Rebuild:
    """Remove the shared database's rows that fail authentication (or whose identity does not
    hash to their keys). A database where no row at all authenticates is left alone and the
    error raised: that is a key mix-up (checked at open) or worse, not a damaged row."""
    log.error("rights cache: a shared row is unusable, removing the damaged rows",
              extra={"why": str(exc)})

    def apply(db: Any) -> tuple[int, int]:
        kept = removed = others = 0
        for table, key_column in _KEYS.items():
            family_column = ", family" if table == "persons" else ""
            last = b""
            while rows := db.execute(
                    f"SELECT {key_column}, row{family_column} FROM {table} "
                    f"WHERE {key_column} > ? ORDER BY {key_column} LIMIT 2000", (last,)
            ).fetchall():
                last = bytes(rows[-1][0])
                for row in rows:
                    if _authentic(cipher, table, bytes(row[0]), bytes(row[1]),
                                  bytes(row[2]) if family_column else None):
                        kept += table == "persons"
                        others += table != "persons"
                        continue
                    db.execute(f"DELETE FROM {table} WHERE {key_column} = ?", (row[0],))
                    removed += 1
        if removed > 1 and not kept + others:
            raise exc
        return kept, removed

    kept, removed = store._write(apply)
    log.error("rights cache: damaged rows removed from the shared database",
              extra={"removed_rows": removed, "kept_rows": kept})
    return Rebuild(reason=str(exc), salvaged=kept, removed=removed, at=stamp)


def _authentic(cipher: RowCipher, table: str, key: bytes, blob: bytes,
               family: bytes | None) -> bool:
    try:
        plain = cipher.open(key, blob)
    except InvalidTag:
        return False
    if table != "persons":
        return True
    try:
        who = codec.decode(plain).who
    except ValueError:
        return False
    return cipher.lookup(who.canonical()) == key and cipher.family(who.nir) == family
