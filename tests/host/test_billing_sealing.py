"""Personal data sealed at rest in the billing journal: no NIR in the database's bytes, the key
file's checks, a wrong key, a blob moved to another row or altered, the migration of a clear
(schema 1) journal, and the export files' modes."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from billing_fixtures import SYNTH, dispensation
from cryptography.exceptions import InvalidTag
from hypothesis import given, settings
from hypothesis import strategies as st

from comptoir.billing import Exporter, IntegrityError, Journal, JournalError, verify
from comptoir.billing.cli import main as billing_main
from comptoir.billing.crypto import KeyFileError, SheetCipher, default_key_path, join_texts
from comptoir.billing.journal import SCHEMA_VERSION, _v1_input_digest, _v1_person_key
from comptoir.billing.model import PatientRef
from comptoir.billing.render import sheet_from_json

T0 = 1_780_000_000


def _record(j: Journal, start: int, stop: int) -> list[str]:
    """Records SYNTH dispensations start..stop; returns the NIRs on their sheets."""
    return [j.record(SYNTH.dispensation(i), now=T0 + i).insured_nir for i in range(start, stop)]


def _files_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.iterdir()
                    if p.is_file() and p.name.startswith(db.name))


def _assert_no_identity(raw: bytes, sheets: list[tuple[str, int, int]]) -> None:
    for nir, birth_date, birth_rank in sheets:
        assert nir.encode() not in raw
        assert nir[:13].encode() not in raw
        legacy = _v1_person_key(PatientRef(nir, birth_date, birth_rank))
        assert legacy.encode() not in raw  # the unkeyed hash of schema 1 is gone too


def _identities(j: Journal, ids: list[str]) -> list[tuple[str, int, int]]:
    out = []
    for tx in ids:
        s = j.sheet(tx)
        assert s is not None
        out.append((s.insured_nir, s.birth_date, s.birth_rank))
    return out


def test_no_nir_in_the_journal_files(tmp_path: Path) -> None:
    db = tmp_path / "billing.db"
    j = Journal(db, lot_size=7)
    _record(j, 0, 40)
    Exporter(j, tmp_path / "out").export()
    ids = [r[0] for r in j.db.execute("SELECT transaction_id FROM sheet")]
    people = _identities(j, ids)
    assert len({p[0] for p in people}) > 5
    # Before any checkpoint (the write-ahead log holds everything) and after one.
    assert (tmp_path / "billing.db-wal").stat().st_size > 0
    _assert_no_identity(_files_bytes(db), people)
    j.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _assert_no_identity(_files_bytes(db), people)
    assert verify(j, tmp_path / "out").ok
    # The CSV stays in clear (no personal data), the texts are sealed.
    (csv, sealed) = j.db.execute("SELECT csv, sealed FROM sheet LIMIT 1").fetchone()
    assert csv.startswith("1,") and isinstance(sealed, bytes)
    j.close()


def test_key_file_created_0600_and_refused_when_others_can_read(tmp_path: Path) -> None:
    db = tmp_path / "data" / "billing.db"
    db.parent.mkdir()
    Journal(db).close()
    key = default_key_path(db)
    assert key == tmp_path / "data" / "keys" / "billing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    for mode in (0o640, 0o604):
        key.chmod(mode)
        with pytest.raises(KeyFileError, match=f"key file {key} is readable by others"):
            Journal(db)
    key.chmod(0o600)
    Journal(db).close()
    # The command line never creates a key: a missing one is named.
    assert billing_main(["--db", str(db), "--key", str(tmp_path / "nope.key"), "list"]) == 2
    assert not (tmp_path / "nope.key").exists()


def test_wrong_key_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "billing.db"
    with Journal(db, lot_size=5) as j:
        _record(j, 0, 12)
    other = tmp_path / "other.key"
    with pytest.raises(KeyFileError, match=f"key file {other} is not the key of the billing "
                       f"journal {db}"):
        Journal(db, key=other)
    assert billing_main(["--db", str(db), "--key", str(other), "verify"]) == 2
    assert f"key file {other} is not the key" in capsys.readouterr().err
    assert billing_main(["--db", str(db), "verify", "--no-progress"]) == 0  # the right one


def _swap_sealed(db: Path, a: int, b: int) -> None:
    con = sqlite3.connect(db)
    (x,), (y,) = (con.execute("SELECT sealed FROM sheet WHERE seq=?", (s,)).fetchone()
                  for s in (a, b))
    con.execute("UPDATE sheet SET sealed=? WHERE seq=?", (y, a))
    con.execute("UPDATE sheet SET sealed=? WHERE seq=?", (x, b))
    con.commit()
    con.close()


def test_a_blob_moved_to_another_row_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "billing.db"
    j = Journal(db, lot_size=5)
    _record(j, 0, 20)  # two pharmacies, lots of 5
    finess = j.pharmacies()[0]
    (a, ia, ta), (b, ib, _) = j.db.execute(
        "SELECT seq, invoice_no, transaction_id FROM sheet WHERE finess=? AND lot=1 "
        "ORDER BY seq LIMIT 2", (finess,)).fetchall()
    assert verify(j).ok
    _swap_sealed(db, a, b)  # two people's care sheets exchanged
    problems = verify(j).problems
    assert f"lot {finess}/1: invoice {ia}: sealed texts do not open (altered, moved from " \
           "another row, or another key)" in problems
    assert any(p.startswith(f"lot {finess}/1: invoice {ib}: sealed texts") for p in problems)
    assert all(p.startswith(f"lot {finess}/1:") for p in problems)
    with pytest.raises(IntegrityError, match=f"invoice {finess}/{ia}: sealed texts"):
        j.sheet(ta)
    out = tmp_path / "out"
    with pytest.raises(IntegrityError, match=f"lot {finess}/1: invoice {ia}: sealed"):
        Exporter(j, out).export()
    assert not list((out / finess).iterdir())  # nothing of the failed batch left
    j.close()


def test_a_tampered_blob_is_found_by_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "billing.db"
    with Journal(db, lot_size=5) as j:
        _record(j, 0, 23)  # lots closed, and open sheets left
        finess = j.pharmacies()[1]
        closed = j.db.execute("SELECT seq, invoice_no FROM sheet WHERE finess=? AND lot=2 "
                              "ORDER BY seq LIMIT 1", (finess,)).fetchone()
        still_open = j.db.execute("SELECT seq, invoice_no FROM sheet WHERE finess=? AND lot IS "
                                  "NULL ORDER BY seq LIMIT 1", (finess,)).fetchone()
    con = sqlite3.connect(db)
    for seq, _ in (closed, still_open):
        blob = bytearray(con.execute("SELECT sealed FROM sheet WHERE seq=?", (seq,)).fetchone()[0])
        blob[40] ^= 1  # one bit of the ciphertext
        con.execute("UPDATE sheet SET sealed=? WHERE seq=?", (bytes(blob), seq))
    con.commit()
    con.close()
    assert billing_main(["--db", str(db), "verify", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"lot {finess}/2: invoice {closed[1]}: sealed texts do not open" in out
    assert f"pharmacy {finess}: open invoice {still_open[1]}: sealed texts do not open" in out
    assert "FAILED" in out and f"lot {finess}/1:" not in out


def test_export_files_0600_in_a_0700_directory(tmp_path: Path) -> None:
    with Journal(tmp_path / "billing.db", lot_size=5) as j:
        _record(j, 0, 10)
        out = tmp_path / "export"
        Exporter(j, out).export()
        assert stat.S_IMODE(out.stat().st_mode) == 0o700
        files = [p for p in out.rglob("*") if p.is_file()]
        assert len(files) == 6
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        for d in out.iterdir():
            assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
        victim = files[0]
        victim.unlink()
        assert Exporter(j, out).export().restored == 1  # a restored file too
        assert stat.S_IMODE(victim.stat().st_mode) == 0o600


# --- migration of a schema-1 (clear) journal ------------------------------------------------

V1_SHEET = """
CREATE TABLE sheet (
    seq INTEGER PRIMARY KEY,
    transaction_id TEXT NOT NULL UNIQUE,
    input_digest TEXT NOT NULL,
    finess TEXT NOT NULL,
    invoice_no INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    person_key TEXT NOT NULL,         -- hash of the patient identity, for the franchise cap
    year INTEGER NOT NULL,
    total INTEGER NOT NULL, amo INTEGER NOT NULL, amc INTEGER NOT NULL,
    patient INTEGER NOT NULL, franchise INTEGER NOT NULL,
    lot INTEGER,                      -- NULL while open
    body TEXT NOT NULL, b2 TEXT NOT NULL, csv TEXT NOT NULL,
    UNIQUE (finess, invoice_no)
)"""


def _make_v1(db: Path, n: int) -> dict[str, object]:
    """A schema-1 journal as the code before sealing wrote it (texts, person keys and digests
    in clear): built with today's journal, then rewritten into schema 1 (same lots, hashes,
    numbers). Returns what the tests compare against."""
    with Journal(db, key=bytes(32), lot_size=6) as j:
        index = {}
        for i in range(n):
            d = SYNTH.dispensation(i)
            index[d.transaction.transaction_id] = i
            j.record(d, now=T0 + i)
        rows, v1_key = [], {}
        for (seq, tx, finess, invoice, recorded, pkey, year, total, amo, amc, patient,
             franchise, lot, sealed, csv) in j.db.execute(
                "SELECT seq, transaction_id, finess, invoice_no, recorded_at, person_key, year, "
                "total, amo, amc, patient, franchise, lot, sealed, csv FROM sheet ORDER BY seq"
                ).fetchall():
            body, _, b2 = j.cipher.open(finess, invoice, tx, sealed).partition(b"\n")
            s = sheet_from_json(body.decode())
            v1_key[pkey] = _v1_person_key(PatientRef(s.insured_nir, s.birth_date, s.birth_rank))
            digest = _v1_input_digest(SYNTH.dispensation(index[tx]))
            rows.append((seq, tx, digest, finess, invoice, recorded, v1_key[pkey], year, total,
                         amo, amc, patient, franchise, lot, body.decode(), b2.decode(), csv))
        franchise_rows = [(v1_key[k], y, c) for k, y, c in
                          j.db.execute("SELECT person_key, year, charged FROM franchise_year")]
        assert franchise_rows
        lots = j.lots()
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN")
    con.execute("DROP TABLE sheet")
    con.execute("DROP TABLE meta")
    con.execute(V1_SHEET)
    con.execute("CREATE INDEX sheet_lot ON sheet (finess, lot, seq)")
    con.executemany("INSERT INTO sheet VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.execute("DELETE FROM franchise_year")
    con.executemany("INSERT INTO franchise_year VALUES (?, ?, ?)", franchise_rows)
    con.execute("PRAGMA user_version=1")
    con.execute("COMMIT")
    con.execute("VACUUM")
    con.close()
    people = [(sheet_from_json(r[14]).insured_nir, sheet_from_json(r[14]).birth_date,
               sheet_from_json(r[14]).birth_rank) for r in rows]
    return {"lots": lots, "people": people, "count": n}


def test_a_clear_journal_is_sealed_once_by_the_migration(tmp_path: Path) -> None:
    db = tmp_path / "billing.db"
    before = _make_v1(db, 50)
    people = before["people"]
    assert isinstance(people, list)
    raw = db.read_bytes()
    assert people[0][0].encode() in raw  # the fixture is a clear journal indeed
    # The files of the clear journal, exported by today's exporter (same texts).
    key = tmp_path / "keys" / "billing.key"
    j = Journal(db, key=key, lot_size=6)
    assert j.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert j.lots() == before["lots"]  # hashes, numbers, sums: untouched
    assert j.count_sheets() == before["count"]
    assert verify(j).ok
    _assert_no_identity(_files_bytes(db), people)
    # A retry of a transaction recorded before the migration is still recognised...
    first = j.sheet(f"{SYNTH.dispensation(3).transaction.transaction_id}")
    assert first is not None
    assert j.record(SYNTH.dispensation(3), now=T0 + 1000) == first
    # ... and a different bill under its id still refused.
    with pytest.raises(JournalError, match="already billed differently"):
        j.record(dispensation(tx=first.transaction_id))
    # Recording goes on: franchise running totals carried over under the keyed person keys.
    _record(j, 50, 80)
    for finess in j.pharmacies():
        j.close_lot(finess, now=T0 + 2000)
    out = tmp_path / "out"
    Exporter(j, out).export()
    report = verify(j, out)
    assert report.ok, report.problems
    assert report.sheets == 80
    j.close()
    # Opened again: nothing more to migrate.
    with Journal(db, key=key) as j2:
        assert verify(j2).ok
    _assert_no_identity(_files_bytes(db), people)


def test_migration_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "billing.db"
    people = _make_v1(db, 20)["people"]
    assert isinstance(people, list)
    from comptoir.billing import journal as journal_mod

    def broken(*args: object) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(journal_mod.SheetCipher, "seal", broken)
    with pytest.raises(OSError, match="disk full"):
        Journal(db, key=tmp_path / "k.key")
    monkeypatch.undo()
    assert people[0][0].encode() in _files_bytes(db)  # still the clear journal, untouched
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    assert {r[1] for r in con.execute("PRAGMA table_info(sheet)")} >= {"body", "b2"}
    con.close()
    with Journal(db, key=tmp_path / "k.key") as j:
        assert verify(j).ok and j.count_sheets() == 20


def test_newer_schema_refused(tmp_path: Path) -> None:
    db = tmp_path / "billing.db"
    Journal(db).close()
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version=3")
    con.close()
    with pytest.raises(JournalError, match="schema 3, newer"):
        Journal(db)


def test_key_creation_is_atomic(tmp_path: Path) -> None:
    """A key file is linked into place whole: no temporary left, never a short key."""
    key = tmp_path / "keys" / "billing.key"
    Journal(tmp_path / "a.db", key=key).close()
    assert len(key.read_bytes()) == 32
    assert sorted(os.listdir(key.parent)) == ["billing.key"]
    assert hashlib.sha256(key.read_bytes()).hexdigest()  # readable by its owner


# The export's fast path (Journal._open_rows: the row's associated data built inline, for the
# BENCHMARKS.md export figure) must open exactly what the general path (SheetCipher.open) opens,
# and refuse exactly what it refuses.
_FAST = Journal.__new__(Journal)
_FAST.cipher = SheetCipher(bytes(range(32)))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(1, 999_999_999), st.text(min_size=1, max_size=40),
                               st.binary(max_size=80), st.binary(max_size=80),
                               st.sampled_from(["ok", "moved", "cut", "flipped"])),
                     max_size=8),
       finess=st.from_regex(r"[0-9]{9}", fullmatch=True))
def test_the_export_fast_path_opens_what_the_general_path_opens(
        rows: list[tuple[int, str, bytes, bytes, str]], finess: str) -> None:
    cipher = _FAST.cipher
    stored, expected, refused = [], [], []
    for invoice, tx_id, body, b2, damage in rows:
        body = body.replace(b"\n", b" ")  # a sheet's JSON is compact: no raw newline
        blob = cipher.seal(finess, invoice, tx_id, join_texts(body, b2))
        if damage == "moved":
            blob = cipher.seal(finess, invoice + 1, tx_id, join_texts(body, b2))
        elif damage == "cut":
            blob = blob[:27]
        elif damage == "flipped":
            blob = blob[:-1] + bytes([blob[-1] ^ 1])
        stored.append((invoice, tx_id, blob, b"csv"))
        try:
            plain = cipher.open(finess, invoice, tx_id, blob)
        except InvalidTag:
            refused.append(invoice)
            continue
        one, _, two = plain.partition(b"\n")
        expected.append((one, two, b"csv"))
    bad: list[int] = []
    assert _FAST._open_rows(finess, stored, "test", bad) == expected
    assert bad == refused
