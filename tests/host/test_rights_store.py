"""The rights cache on disk: no plaintext personal data in the files, the key file, schema
migrations, corruption (truncated, flipped bytes, swapped rows, wrong key) detected and
rebuilt, a full disk that loses nothing committed (also on PostgreSQL's side), erasure that
leaves no bytes behind. (A damaged row on both backends: test_rights_damage_backends.py.)"""

from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest
from pg_fixtures import pg_server  # noqa: F401 (fixture)
from pg_full_disk import small_tablespace
from rights_fixtures import NOW, fam, file_bytes, members, open_cache, secrets_of, twins_family

from comptoir.rights import (
    CacheFull,
    KeyFileError,
    SchemaTooNew,
    Source,
    Status,
    migrations,
)
from comptoir.rights.crypto import RowCipher, load_or_create_key
from comptoir.rights.sources import snapshot
from comptoir.rights.store import RightsStore

FAMILIES = [twins_family(), *(fam(s, beneficiaries=s % 4) for s in range(1, 16))]


def fill(cache, families=FAMILIES, obtained_at=NOW):
    for f in families:
        cache.record_service(
            f.insured.nir,
            snapshot(
                f.insured,
                f.beneficiaries,
                f.affiliation,
                f.amc,
                source=Source.SERVICE,
                obtained_at=obtained_at,
            ),
        )


def expected(f, who):
    return next(
        r
        for r in snapshot(
            f.insured, f.beneficiaries, f.affiliation, f.amc, source=Source.SERVICE, obtained_at=NOW
        )
        if r.who == who
    )


def assert_never_wrong(cache, families=FAMILIES):
    """Each person gets their own record or nothing; returns how many were served."""
    served = 0
    for f in families:
        for who in members(f):
            answer = cache.rights_for(who)
            if answer.record is None:
                assert answer.status is Status.UNKNOWN
            else:
                assert answer.record == expected(f, who)
                served += 1
    return served


def all_people(families=FAMILIES):
    return sum(len(members(f)) for f in families)


# -- no plaintext --------------------------------------------------------------------------------


def test_database_and_wal_hold_no_plaintext_nir_or_name(tmp_path):
    cache = open_cache(tmp_path)
    fill(cache)
    db = tmp_path / "rights.db"
    assert (tmp_path / "rights.db-wal").stat().st_size > 0  # the rows are in the WAL now
    for stage in ("wal", "checkpointed"):
        data = file_bytes(db)
        for secret in secrets_of(FAMILIES):
            assert secret not in data, f"plaintext found ({stage})"
        for f in FAMILIES:  # not an unkeyed hash of the NIR either
            assert hashlib.sha256(f.insured.nir.encode()).digest()[:16] not in data
        cache.store.checkpoint()
    assert cache.counts()["persons"] == all_people()
    assert assert_never_wrong(cache) == all_people()
    cache.close()


def test_key_file_is_created_0600_and_refused_when_others_can_read(tmp_path):
    path = tmp_path / "k"
    key = load_or_create_key(path)
    assert len(key) == 32 and (path.stat().st_mode & 0o777) == 0o600
    assert load_or_create_key(path) == key
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        load_or_create_key(path)
    os.chmod(path, 0o600)
    path.write_bytes(b"short")
    with pytest.raises(KeyFileError, match="32-byte"):
        load_or_create_key(path)


# -- migrations ----------------------------------------------------------------------------------


def test_schema_is_migrated_step_by_step_and_never_downgraded(tmp_path):
    db_path = tmp_path / "rights.db"
    db = sqlite3.connect(db_path, isolation_level=None)
    assert migrations.migrate(db, target=1) == 0
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    db.close()
    store = RightsStore(db_path, RowCipher(b"k" * 32))
    assert store.schema_found == 1 and store.counts().schema_version == migrations.VERSION
    assert store.means(b"x") is None  # the v2 table exists
    store.close()
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute(f"PRAGMA user_version = {migrations.VERSION + 1}")
    db.close()
    with pytest.raises(SchemaTooNew):
        RightsStore(db_path, RowCipher(b"k" * 32))


# -- corruption ----------------------------------------------------------------------------------


def _filled(tmp_path):
    cache = open_cache(tmp_path)
    fill(cache)
    cache.store.checkpoint()
    cache.close()
    return tmp_path / "rights.db"


@pytest.mark.parametrize("keep", [0, 50, None])  # bytes kept; None = half the file
def test_truncated_file_is_detected_and_rebuilt(tmp_path, keep):
    db = _filled(tmp_path)
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.truncate(size // 2 if keep is None else keep)
    cache = open_cache(tmp_path)
    assert len(cache.rebuilds) == 1
    assert any(w in cache.rebuilds[0].reason for w in ("truncated", "empty", "header"))
    assert not any(p.name.startswith("rights.db.corrupt") for p in tmp_path.iterdir())
    assert assert_never_wrong(cache) == cache.rebuilds[0].salvaged <= all_people()
    fill(cache)  # the rebuilt file works
    assert assert_never_wrong(cache) == all_people()
    cache.close()


def _offset_of_row(tmp_path, who):
    cache = open_cache(tmp_path)
    lookup = cache._cipher.lookup(who.canonical())
    blob = cache.store._db.execute("SELECT row FROM persons WHERE lookup = ?", (lookup,)).fetchone()
    cache.close()
    data = (tmp_path / "rights.db").read_bytes()
    offset = data.find(bytes(blob[0]))
    assert offset > 0
    return offset + len(blob[0]) // 2


def _flip(path, offset, count=1):
    with path.open("r+b") as f:
        f.seek(offset)
        chunk = f.read(count)
        f.seek(offset)
        f.write(bytes(b ^ 0x5A for b in chunk))


def test_flipped_bytes_in_a_row_are_caught_at_open_with_full_verification(tmp_path):
    db = _filled(tmp_path)
    victim = members(FAMILIES[0])[2]
    _flip(db, _offset_of_row(tmp_path, victim), 3)
    cache = open_cache(tmp_path, verify_rows="all")
    assert len(cache.rebuilds) == 1 and "authentication" in cache.rebuilds[0].reason
    assert cache.rebuilds[0].salvaged == all_people() - 1
    assert cache.rights_for(victim).status is Status.UNKNOWN
    assert assert_never_wrong(cache) == all_people() - 1
    cache.close()


def test_flipped_bytes_found_at_lookup_rebuild_and_never_serve_the_row(tmp_path):
    db = _filled(tmp_path)
    victim = members(FAMILIES[3])[0]
    _flip(db, _offset_of_row(tmp_path, victim))
    cache = open_cache(tmp_path, verify_rows="none")
    assert cache.rebuilds == []
    answer = cache.rights_for(victim)
    assert answer.status is Status.UNKNOWN and answer.record is None
    assert len(cache.rebuilds) == 1
    assert assert_never_wrong(cache) == all_people() - 1
    cache.close()


def test_flipped_bytes_anywhere_never_give_wrong_rights(tmp_path):
    db = _filled(tmp_path)
    pristine = db.read_bytes()
    size = len(pristine)
    for i, offset in enumerate(range(100, size, size // 23)):
        db.write_bytes(pristine)
        _flip(db, offset, 16)
        sub = tmp_path / f"run{i}"
        sub.mkdir()
        os.replace(db, sub / "rights.db")
        os.link(tmp_path / "rights.key", sub / "rights.key")
        cache = open_cache(sub, integrity="quick", verify_rows="sample")
        assert_never_wrong(cache)
        cache.close()


def test_rows_swapped_between_two_people_fail_authentication(tmp_path):
    db = _filled(tmp_path)
    a, b = members(FAMILIES[0])[2], members(FAMILIES[0])[3]  # the twins
    cipher = RowCipher(load_or_create_key(tmp_path / "rights.key"))
    la, lb = cipher.lookup(a.canonical()), cipher.lookup(b.canonical())
    raw = sqlite3.connect(db, isolation_level=None)
    ra = raw.execute("SELECT row FROM persons WHERE lookup = ?", (la,)).fetchone()[0]
    rb = raw.execute("SELECT row FROM persons WHERE lookup = ?", (lb,)).fetchone()[0]
    raw.execute("UPDATE persons SET row = ? WHERE lookup = ?", (rb, la))
    raw.execute("UPDATE persons SET row = ? WHERE lookup = ?", (ra, lb))
    raw.close()
    cache = open_cache(tmp_path, verify_rows="none")
    assert cache.rights_for(a).status is Status.UNKNOWN
    assert cache.rights_for(b).status is Status.UNKNOWN
    assert len(cache.rebuilds) == 1
    assert assert_never_wrong(cache) == all_people() - 2
    cache.close()


def test_wrong_key_is_a_clear_error_and_the_cache_restarts_empty(tmp_path):
    _filled(tmp_path)
    (tmp_path / "rights.key").unlink()
    cache = open_cache(tmp_path)  # a new key file is created
    assert len(cache.rebuilds) == 1
    assert "another key" in cache.rebuilds[0].reason and cache.rebuilds[0].salvaged == 0
    assert cache.counts()["persons"] == 0
    assert assert_never_wrong(cache) == 0
    cache.close()


def test_not_a_database_is_rebuilt(tmp_path):
    (tmp_path / "rights.db").write_bytes(os.urandom(8192))
    cache = open_cache(tmp_path)
    assert len(cache.rebuilds) == 1 and "header" in cache.rebuilds[0].reason
    cache.close()


# -- full disk -----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def small_cache(request, tmp_path):
    """Opens (and opens again) a cache with room for a few families only: this PC's file, or
    the database the counters share (issue 17)."""
    if request.param == "sqlite":
        # A tiny filesystem, simulated with SQLite's page limit (max_page_count): the same
        # SQLITE_FULL error path as ENOSPC, without needing root to mount a small tmpfs.
        yield lambda **kw: open_cache(tmp_path, **{"max_pages": 24, **kw})
        return
    # The server's own disk full, for real: the tables on a small tmpfs (pg_full_disk.py).
    with small_tablespace(request.getfixturevalue("pg_server"), "256k") as (url, _):
        yield lambda **kw: open_cache(tmp_path, url=url, **kw)


def test_full_disk_is_an_error_that_loses_nothing_committed(small_cache):
    families = [fam(s, beneficiaries=3) for s in range(100, 400)]
    cache = small_cache()
    stored = []
    with pytest.raises(CacheFull):
        for f in families:
            fill(cache, [f])
            stored.append(f)
    failed = families[len(stored)]
    assert 5 < len(stored) < len(families)
    assert cache.rights_for(members(stored[0])[0]).status is Status.FRESH  # still readable
    cache.close()
    cache = small_cache(integrity="full", verify_rows="all")
    assert cache.rebuilds == []
    assert assert_never_wrong(cache, stored) == all_people(stored)
    # The snapshot that did not fit is all absent, not half written.
    assert all(cache.rights_for(w).status is Status.UNKNOWN for w in members(failed))
    assert cache.counts()["persons"] == all_people(stored)
    cache.close()


# -- erasure -------------------------------------------------------------------------------------


def test_purge_removes_a_person_entirely(tmp_path):
    cache = open_cache(tmp_path)
    fill(cache)
    victim = members(FAMILIES[0])[1]  # the spouse born the same day as the insured
    lookup = cache._cipher.lookup(victim.canonical())
    blob = bytes(
        cache.store._db.execute("SELECT row FROM persons WHERE lookup = ?", (lookup,)).fetchone()[0]
    )
    db = tmp_path / "rights.db"
    assert lookup in file_bytes(db) and blob in file_bytes(db)
    assert cache.purge(victim) == 1
    data = file_bytes(db)
    assert lookup not in data and blob[12:40] not in data
    assert cache.rights_for(victim).status is Status.UNKNOWN
    assert assert_never_wrong(cache) == all_people() - 1
    assert cache.purge_family(FAMILIES[1].insured.nir) == len(members(FAMILIES[1]))
    assert all(cache.rights_for(w).status is Status.UNKNOWN for w in members(FAMILIES[1]))
    assert cache.purge(victim) == 0
    cache.close()
