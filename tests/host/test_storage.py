"""The storage layer: key files, sealing, numbered migrations, failed writes, and files written
by the code before it (tests/host/storage_files, made by make_files.py.txt at e4d175a) still
opening as they were."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from comptoir.billing import Journal
from comptoir.rights import RightsCache
from comptoir.storage import (
    KeyFileError,
    Schema,
    Sealer,
    load_or_create_key,
    migrate,
    open_sqlite,
    write_failed,
)
from comptoir.transactions import JournalBiller, State, TransactionStore

FILES = Path(__file__).parent / "storage_files"
NOW = 1_790_000_000


@pytest.fixture
def old(tmp_path: Path) -> Path:
    for name in ("billing.db", "rights.db", "transactions.db", "storage.key"):
        shutil.copy(FILES / name, tmp_path / name)
    (tmp_path / "storage.key").chmod(0o600)
    return tmp_path


def test_files_of_the_previous_code_open_as_they_were(old: Path) -> None:
    done, still_open = (FILES / "transactions.ids").read_text().split()
    key = load_or_create_key(old / "storage.key", create=False)
    biller = JournalBiller(old / "billing.db", key=old / "storage.key")
    store = TransactionStore(old / "transactions.db", key, biller, clock=lambda: float(NOW))
    try:
        tx = store.get(done)
        assert tx.state is State.DISPENSED and tx.chosen == 1 and len(tx.people) == 3
        assert tx.sheet is not None and tx.sheet.invoice_no == 1
        assert store.get(still_open).state is State.AWAITING_BENEFICIARY
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == 2
    finally:
        store.close()
        biller.close()
    with Journal(old / "billing.db", key=old / "storage.key") as j:
        assert j.count_sheets() == 1 and j.db.execute("PRAGMA user_version").fetchone()[0] == 2
    cache = RightsCache.open(old / "rights.db", old / "storage.key", clock=lambda: NOW)
    try:
        assert not cache.rebuilds and cache.counts()["persons"] == 3
    finally:
        cache.close()


def test_a_key_file_is_refused_unless_private_ours_and_32_bytes(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "k.key"
    with pytest.raises(KeyFileError, match="missing"):
        load_or_create_key(path, create=False)
    key = load_or_create_key(path)
    assert len(key) == 32 and load_or_create_key(path) == key
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match="readable by others"):
        load_or_create_key(path)
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(KeyFileError, match="32-byte"):
        load_or_create_key(path)


def test_a_sealed_blob_opens_only_in_its_own_row_and_store() -> None:
    master = bytes(32)
    a, b = Sealer(master, b"store a"), Sealer(master, b"store b")
    blob = a.seal(b"row 1", b"personal")
    assert a.open(b"row 1", blob) == b"personal"
    for sealer, aad, data in ((a, b"row 2", blob), (b, b"row 1", blob), (a, b"row 1", blob[:20])):
        with pytest.raises(InvalidTag):
            sealer.open(aad, data)
    with pytest.raises(KeyFileError):
        Sealer(b"short", b"x")


def test_migrations_run_once_in_order_and_refuse_a_newer_file(tmp_path: Path) -> None:
    db = open_sqlite(tmp_path / "m.db")
    assert (tmp_path / "m.db").stat().st_mode & 0o777 == 0o600
    calls: list[int] = []
    steps = Schema(("CREATE TABLE t (a); INSERT INTO t VALUES (1)",
                    lambda c: calls.append(c.execute("SELECT a FROM t").fetchone()[0])))
    assert migrate(db, steps, too_new=lambda f, o: RuntimeError(f), target=1) == 0
    assert migrate(db, steps, too_new=lambda f, o: RuntimeError(f)) == 1
    assert migrate(db, steps, too_new=lambda f, o: RuntimeError(f)) == 2 and calls == [1]
    broken = Schema((*steps.steps, "CREATE TABLE u (a); CREATE TABLE t (a)"))
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, broken, too_new=lambda f, o: RuntimeError(f))
    # The failed step left nothing: no table u, still version 2.
    assert db.execute("SELECT name FROM sqlite_master WHERE name='u'").fetchone() is None
    with pytest.raises(RuntimeError, match="2"):
        migrate(db, Schema(steps.steps[:1]), too_new=lambda f, o: RuntimeError(f))
    fresh = open_sqlite(tmp_path / "f.db")
    assert migrate(fresh, Schema(("bad sql",), fresh="CREATE TABLE t (a)"),
                   too_new=lambda f, o: RuntimeError(f)) == 0
    assert fresh.execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_full_disk_and_an_io_error_are_failed_writes(tmp_path: Path) -> None:
    db = open_sqlite(tmp_path / "full.db")
    db.execute("CREATE TABLE t (a BLOB)")
    db.execute("PRAGMA max_page_count=8")
    with pytest.raises(sqlite3.Error) as full:
        db.execute("INSERT INTO t VALUES (?)", (os.urandom(64 * 1024),))
    assert write_failed(full.value)
    io = sqlite3.OperationalError("disk I/O error")
    io.sqlite_errorcode = 778  # type: ignore[attr-defined]  # SQLITE_IOERR_WRITE
    assert write_failed(io)
    with pytest.raises(sqlite3.Error) as other:
        db.execute("SELECT * FROM nowhere")
    assert not write_failed(other.value) and not write_failed(ValueError("full"))
