"""The rights cache on disk: one SQLite file in WAL mode, every row sealed with AES-GCM.

Opening checks, in order, and raises CacheCorrupt (never opens a suspect file for use):
the SQLite header and the file length it promises (a truncated file), PRAGMA quick_check
(or integrity_check), the schema version, the key check (WrongKey), and the authentication
of a sample of rows. Any row that later fails authentication raises CacheCorrupt too.

Writes are short IMMEDIATE transactions; SQLITE_FULL rolls the transaction back and raises
CacheFull, so what was committed before stays committed.

On PostgreSQL (`store_pg.open_store`, several counters sharing one cache) the same queries and
sealing run on the server's connection; the file checks (header, quick_check, page limit,
WAL) are SQLite's own and skipped there, the key check and the row authentication are not.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
from cryptography.exceptions import InvalidTag

from comptoir.storage import (
    SQLITE,
    Connection,
    Dialect,
    open_sqlite,
    write_failed,
    write_transaction,
)

from . import codec, migrations
from .crypto import RowCipher
from .errors import CacheCorrupt, CacheFull, RowCorrupt, WrongKey
from .files import check_file
from .model import BeneficiaryId, RightsRecord, Source, Sourced, merge

_SAMPLE_ROWS = 16

# States of a presented means (phone credential), from the status list or the opposition list.
MEANS_ACTIVE, MEANS_DEACTIVATED, MEANS_SUSPENDED, MEANS_OPPOSED = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Counts:
    persons: int
    families: int
    means: int
    schema_version: int
    file_bytes: int


class RightsStore:
    def __init__(
        self,
        path: str | Path,
        cipher: RowCipher,
        *,
        integrity: str = "quick",  # "quick", "full" (integrity_check) or "none"
        verify_rows: str = "sample",  # "sample", "all" or "none"
        max_pages: int | None = None,  # a page limit: how tests make a full disk
        durable: bool = False,
        db: Connection | None = None,
        dialect: Dialect = SQLITE,
    ) -> None:
        """`db` and `dialect`: another backend's connection (`store_pg.open_store`); `path`
        then only names it."""
        self.path = Path(path)
        self._cipher = cipher
        self._lock = threading.RLock()
        self._dialect = dialect
        self._db: Any
        if db is not None:
            self._db = db
        else:
            if self.path.exists():
                check_file(self.path)
            try:
                self._db = open_sqlite(self.path, synchronous="FULL" if durable else "NORMAL",
                                       timeout=5.0, check_same_thread=False)
            except sqlite3.DatabaseError as exc:
                if write_failed(exc):
                    raise CacheFull("disk full while opening the rights cache") from None
                raise CacheCorrupt(f"cannot open database: {exc}") from None
        try:
            if dialect is SQLITE:
                self._configure(integrity, max_pages)
            self.schema_found = migrations.migrate(self._db, dialect=dialect)
            self._check_key()
            if verify_rows != "none":
                self.verify(sample=verify_rows == "sample")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if write_failed(exc):
                raise CacheFull("disk full while opening the rights cache") from None
            raise CacheCorrupt(f"database unusable: {exc}") from None
        except BaseException:
            self._db.close()
            raise

    @property
    def on_sqlite(self) -> bool:
        return self._dialect is SQLITE

    def _configure(self, integrity: str, max_pages: int | None) -> None:
        db = self._db
        if integrity != "none":
            pragma = "integrity_check" if integrity == "full" else "quick_check"
            rows = [r[0] for r in db.execute(f"PRAGMA {pragma}(20)")]
            if rows != ["ok"]:
                raise CacheCorrupt(f"{pragma} failed ({len(rows)} problems)")
        db.execute("PRAGMA foreign_keys=ON")
        if max_pages is not None:
            db.execute(f"PRAGMA max_page_count={int(max_pages)}")

    def _check_key(self) -> None:
        expected = self._cipher.key_check()
        row = self._db.execute("SELECT v FROM meta WHERE k = 'key_check'").fetchone()
        if row is None:
            has_rows = self._db.execute("SELECT 1 FROM persons LIMIT 1").fetchone()
            if has_rows:
                raise CacheCorrupt("key check missing from a database that has rows")
            self._write(
                lambda db: db.execute("INSERT INTO meta VALUES ('key_check', ?)", (expected,))
            )
        elif bytes(row[0]) != expected:
            raise WrongKey("the rights cache was written with another key file")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing -------------------------------------------------------------------------------

    def _write(self, fn: Any) -> Any:
        """Run fn(db) in one IMMEDIATE transaction; a full disk rolls back and raises CacheFull."""
        with self._lock:
            db = self._db
            try:
                with write_transaction(db, self._dialect):
                    result = fn(db)
            except Exception as exc:  # SQLite's or the server's (write_failed knows both)
                if write_failed(exc):
                    raise CacheFull("rights cache: disk full, update not stored") from None
                raise
            return result

    def _seal(self, record: RightsRecord) -> tuple[bytes, bytes, int, bytes]:
        lookup = self._cipher.lookup(record.who.canonical())
        amo = record.amo
        obtained = amo.obtained_at if amo is not None else 0
        return (
            lookup,
            self._cipher.family(record.who.nir),
            obtained,
            self._cipher.seal(lookup, codec.encode(record)),
        )

    def _open_row(self, lookup: bytes, blob: bytes, who: BeneficiaryId | None) -> RightsRecord:
        try:
            record = codec.decode(self._cipher.open(lookup, bytes(blob)))
        except (InvalidTag, ValueError):
            raise RowCorrupt("a row of the rights cache fails authentication") from None
        if who is not None and record.who != who:
            # Only a hash collision or a forged row could get here: never hand it out.
            raise RowCorrupt("a row's identity does not match its lookup key")
        return record

    def _upsert(self, db: sqlite3.Connection, records: Iterable[RightsRecord]) -> int:
        """Merge each record into what is stored (fresher part wins). Returns rows changed."""
        changed = 0
        for record in records:
            lookup = self._cipher.lookup(record.who.canonical())
            row = db.execute("SELECT row FROM persons WHERE lookup = ?", (lookup,)).fetchone()
            old = None if row is None else self._open_row(lookup, row[0], record.who)
            merged = merge(old, record)
            if merged == old:
                continue
            db.execute("INSERT INTO persons VALUES (?, ?, ?, ?) ON CONFLICT (lookup) DO UPDATE "
                       "SET family = excluded.family, obtained_at = excluded.obtained_at, "
                       "row = excluded.row", self._seal(merged))
            changed += 1
        return changed

    def apply_snapshot(
        self, nir: str, records: list[RightsRecord], source: Source, obtained_at: int
    ) -> int:
        """Merge what one source said about a whole family at one time (records may be empty:
        the source does not know the NIR). Members missing from the freshest snapshot get "no
        AMO rights" as of it, whichever arrives first: a newer snapshot closes the members it
        omits, an older one's extra members are closed as of the newer roster."""
        family = self._cipher.family(nir)
        keys = sorted(self._cipher.lookup(r.who.canonical()) for r in records)
        if any(r.who.nir != nir for r in records):
            raise ValueError("a snapshot member under another NIR")

        def apply(db: sqlite3.Connection) -> int:
            roster = self._roster(db, family)
            if roster is None or ((obtained_at, int(source)), keys) > (roster[0], roster[1]):
                listed = set(keys)
                rows = db.execute(
                    "SELECT lookup, row FROM persons WHERE family = ?", (family,)
                ).fetchall()
                gone = [
                    _closed(self._open_row(bytes(lk), blob, None).who, source, obtained_at)
                    for lk, blob in rows
                    if bytes(lk) not in listed
                ]
                self._put_roster(db, family, (obtained_at, int(source)), keys)
            else:
                (r_at, r_source), r_keys = roster
                newer = set(r_keys)
                gone = [
                    _closed(r.who, Source(r_source), r_at)
                    for r in records
                    if self._cipher.lookup(r.who.canonical()) not in newer
                ]
            return self._upsert(db, [*records, *gone])

        return int(self._write(apply))

    def _roster(
        self, db: sqlite3.Connection, family: bytes
    ) -> tuple[tuple[int, int], list[bytes]] | None:
        row = db.execute("SELECT row FROM rosters WHERE family = ?", (family,)).fetchone()
        if row is None:
            return None
        try:
            at, source, keys = cbor2.loads(self._cipher.open(family, bytes(row[0])))
            return (int(at), int(source)), [bytes(k) for k in keys]
        except (InvalidTag, ValueError, TypeError):
            raise RowCorrupt("a roster row of the rights cache fails authentication") from None

    def _put_roster(
        self, db: sqlite3.Connection, family: bytes, order: tuple[int, int], keys: list[bytes]
    ) -> None:
        blob = self._cipher.seal(family, cbor2.dumps([order[0], order[1], sorted(keys)]))
        db.execute("INSERT INTO rosters VALUES (?, ?) ON CONFLICT (family) DO UPDATE "
                   "SET row = excluded.row", (family, blob))

    def insert_new(self, records: Iterable[RightsRecord]) -> int:
        """Bulk insert into an empty table (rebuild, benchmark): one executemany, no merge."""
        rows = [self._seal(r) for r in records]
        self._write(lambda db: db.executemany("INSERT INTO persons VALUES (?, ?, ?, ?)", rows))
        return len(rows)

    def set_means(self, credential_id: bytes, state: int, source: Source, obtained_at: int) -> bool:
        """Record the state of a phone credential, unless a fresher one is stored."""
        cred = self._cipher.credential(credential_id)

        def apply(db: sqlite3.Connection) -> bool:
            current = self._means(db, cred)
            new = Sourced(state, source, obtained_at)
            if current is not None and current.order() >= new.order():
                return False
            blob = self._cipher.seal(cred, cbor2.dumps([state, int(source), obtained_at]))
            db.execute("INSERT INTO means VALUES (?, ?) ON CONFLICT (cred) DO UPDATE "
                       "SET row = excluded.row", (cred, blob))
            return True

        return bool(self._write(apply))

    def put_sealed(self, rows: Iterable[tuple]) -> None:
        """Store (table, key, blob) rows sealed by this key elsewhere (rebuild)."""
        tables = {"means": "cred", "rosters": "family"}

        def apply(db: sqlite3.Connection) -> None:
            for table, key, blob in rows:
                if table not in tables:
                    raise ValueError(table)
                db.execute(f"INSERT INTO {table} VALUES (?, ?) ON CONFLICT ({tables[table]}) "
                           "DO UPDATE SET row = excluded.row", (key, blob))

        self._write(apply)

    def meta_int(self, name: str, default: int = 0) -> int:
        with self._lock:
            row = self._db.execute("SELECT v FROM meta WHERE k = ?", (name,)).fetchone()
        return default if row is None else int(row[0])

    def set_meta_int(self, name: str, value: int) -> None:
        # meta.v is a blob: PostgreSQL's bytea takes the digits (int() reads them back).
        stored: int | bytes = value if self.on_sqlite else str(int(value)).encode()
        self._write(
            lambda db: db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (k) DO UPDATE "
                                  "SET v = excluded.v", (name, stored))
        )

    def purge(self, who: BeneficiaryId | None = None, *, nir: str | None = None) -> int:
        """Erase one beneficiary (or every row under an insured NIR), then VACUUM and truncate
        the WAL so that no copy of the rows stays in the files."""
        if (who is None) == (nir is None):
            raise ValueError("give a beneficiary or a NIR")

        def apply(db: sqlite3.Connection) -> int:
            if who is not None:
                lookup = self._cipher.lookup(who.canonical())
                family = self._cipher.family(who.nir)
                cur = db.execute("DELETE FROM persons WHERE lookup = ?", (lookup,))
                roster = self._roster(db, family)
                if roster is not None and lookup in roster[1]:  # not even their keyed hash
                    self._put_roster(db, family, roster[0], [k for k in roster[1] if k != lookup])
            else:
                assert nir is not None
                family = self._cipher.family(nir)
                cur = db.execute("DELETE FROM persons WHERE family = ?", (family,))
                db.execute("DELETE FROM rosters WHERE family = ?", (family,))
            return cur.rowcount

        removed = int(self._write(apply))
        self.compact()
        return removed

    def compact(self) -> None:
        with self._lock:
            if not self.on_sqlite:  # the erased rows' dead tuples, reclaimed now
                self._db.execute("VACUUM persons, rosters, means")
                return
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- reading -------------------------------------------------------------------------------

    def get(self, who: BeneficiaryId) -> RightsRecord | None:
        lookup = self._cipher.lookup(who.canonical())
        with self._lock:
            row = self._db.execute("SELECT row FROM persons WHERE lookup = ?", (lookup,)).fetchone()
        return None if row is None else self._open_row(lookup, row[0], who)

    def means(self, credential_id: bytes) -> Sourced[int] | None:
        with self._lock:
            return self._means(self._db, self._cipher.credential(credential_id))

    def _means(self, db: sqlite3.Connection, cred: bytes) -> Sourced[int] | None:
        row = db.execute("SELECT row FROM means WHERE cred = ?", (cred,)).fetchone()
        if row is None:
            return None
        try:
            state, source, obtained = cbor2.loads(self._cipher.open(cred, bytes(row[0])))
            return Sourced(int(state), Source(source), int(obtained))
        except (InvalidTag, ValueError, TypeError):
            raise RowCorrupt("a means row of the rights cache fails authentication") from None

    def records(self, batch: int = 2000) -> Iterator[RightsRecord]:
        """Every record, decrypted and authenticated, in lookup order (keyset pagination, so
        the lock is not held across the whole scan)."""
        last = b""
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT lookup, row FROM persons WHERE lookup > ? ORDER BY lookup LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            for lookup, blob in rows:
                record = self._open_row(bytes(lookup), blob, None)
                if self._cipher.lookup(record.who.canonical()) != bytes(lookup):
                    raise RowCorrupt("a row's identity does not match its lookup key")
                yield record
            last = bytes(rows[-1][0])

    def verify(self, *, sample: bool) -> int:
        """Authenticate rows: a sample spread over the key space, or all. Returns rows checked."""
        if not sample:
            return sum(1 for _ in self.records())
        checked = 0
        with self._lock:
            for i in range(_SAMPLE_ROWS):
                start = bytes([i * 256 // _SAMPLE_ROWS])
                row = self._db.execute(
                    "SELECT lookup, row FROM persons WHERE lookup >= ? ORDER BY lookup LIMIT 1",
                    (start,),
                ).fetchone()
                if row is not None:
                    self._open_row(bytes(row[0]), row[1], None)
                    checked += 1
        return checked

    def stale_families(self, cutoff: int, limit: int | None = None) -> list[str]:
        """Insured NIRs of the families with a member whose AMO rights were obtained at or
        before `cutoff` (or who has none), oldest first, at most `limit`. Ages come from the
        clear column; one row per family is decrypted to learn its NIR (and checked)."""
        with self._lock:
            families = self._db.execute(
                "SELECT family FROM persons GROUP BY family HAVING min(obtained_at) <= ? "
                "ORDER BY min(obtained_at), family" + ("" if limit is None else " LIMIT ?"),
                (cutoff,) if limit is None else (cutoff, limit),
            ).fetchall()
        return self.nirs_of(bytes(f) for (f,) in families)

    def nirs_of(self, families: Iterable[bytes]) -> list[str]:
        """The insured NIR of each family (one of its rows decrypted and checked)."""
        nirs: list[str] = []
        for family in families:
            with self._lock:
                row = self._db.execute(
                    "SELECT lookup, row FROM persons WHERE family = ? LIMIT 1", (family,)
                ).fetchone()
            if row is None:  # erased since
                continue
            record = self._open_row(bytes(row[0]), row[1], None)
            if (
                self._cipher.lookup(record.who.canonical()) != bytes(row[0])
                or self._cipher.family(record.who.nir) != bytes(family)
            ):
                raise RowCorrupt("a row's identity does not match its keys")
            nirs.append(record.who.nir)
        return nirs

    def ages(self) -> list[int]:
        """obtained_at of the AMO rights of every row (clear column): for counts and sync."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT obtained_at FROM persons")]

    def counts(self) -> Counts:
        with self._lock:
            persons = self._db.execute("SELECT count(*) FROM persons").fetchone()[0]
            families = self._db.execute(
                "SELECT count(DISTINCT family) FROM persons"
            ).fetchone()[0]
            means = self._db.execute("SELECT count(*) FROM means").fetchone()[0]
            version = self._dialect.read_version(self._db)
            if not self.on_sqlite:
                size = self._db.execute(
                    "SELECT pg_total_relation_size('persons') + pg_total_relation_size('means')"
                    " + pg_total_relation_size('rosters')").fetchone()[0]
                return Counts(int(persons), int(families), int(means), version, int(size))
        size = self.path.stat().st_size
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.exists():
            size += wal.stat().st_size
        return Counts(persons, families, means, version, size)

    def checkpoint(self) -> None:
        if not self.on_sqlite:
            return
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _closed(who: BeneficiaryId, source: Source, obtained_at: int) -> RightsRecord:
    return RightsRecord(who, amo=Sourced((), source, obtained_at))
