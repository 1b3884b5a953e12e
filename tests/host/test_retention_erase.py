"""Retention erases (issue 15): once a finished transaction's personal data is purged, no
file under the data directory holds it any more, the WAL included, while the store is open
(the daemon running). The sealed blob is looked for too: with the key, a copy of it is the
person.

On PostgreSQL (issue 17) the same test: no row of the shared database holds it any more, and
nothing is on the PC. The server's own files are its administrator's: measured, copies of the
purged sealed blobs stay in its WAL (pg_wal) after the purge, a CHECKPOINT and even a VACUUM
FULL, until PostgreSQL recycles the segment (docs/operations.md section 8)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from backend_fixtures import Backend, backend, pg_server  # noqa: F401 (fixtures)
from billing_fixtures import CIP, DAY, FINESS, PHARMACIST, PRESCRIBER, adult_family

from comptoir.billing import LineInput, TiersPayant
from comptoir.transactions import DispenseRequest, State
from comptoir_tools.credentials.identities import family
from comptoir_tools.testkit.billing_synth import presentation

KEY = bytes(range(32))
RETENTION = 3600


def _needles(fam, sealed: bytes) -> list[bytes]:
    people = (fam.insured, *fam.beneficiaries)
    out = [sealed[i:i + 24] for i in range(0, len(sealed) - 24, 97)]  # windows of the blob
    for p in people:
        out.append((getattr(p, "nir", None) or p.insured_nir).encode())
        # Names long enough not to turn up by chance in binary pages.
        out += [n.encode() for n in (p.family_name, p.given_names) if len(n.encode()) >= 5]
    return out


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in directory.rglob("*") if p.is_file()}


def _rows(url: str | None) -> dict[str, bytes]:
    """Every value of every table of the database (PostgreSQL), by table."""
    if url is None:
        return {}
    import psycopg

    out: dict[str, bytes] = {}
    with psycopg.connect(url) as db:
        tables = [r[0] for r in db.execute(
            "SELECT schemaname || '.' || tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")]
        for table in tables:
            out[f"table {table}"] = b"".join(
                bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode()
                for row in db.execute(f"SELECT * FROM {table}") for v in row)
    return out


def test_purged_people_are_in_no_file_under_the_data_directory(
        tmp_path: Path, backend: Backend) -> None:  # noqa: F811
    data = tmp_path / "data"
    data.mkdir()
    now = [1_790_000_000.0]
    biller = backend.biller(data / "billing.db", key=tmp_path / "billing.key")
    store = backend.transactions(data / "transactions.db", KEY, biller, clock=lambda: now[0],
                                 retention_s=RETENTION)
    try:
        purged, kept = [], []
        for n in range(12):
            fam = family(100 + n, beneficiaries=1 + n % 3, nir_kind="mainland",
                         today=DAY)
            tx = store.create(presentation(fam, 1000 + n), board_id="b", port="p")
            sealed = store.db.execute("SELECT sealed FROM tx WHERE id=?", (tx.id,)).fetchone()[0]
            store.cancel(tx.id)
            purged.append((fam, sealed))
        # Later ones, still within retention (and one billed), must stay readable.
        now[0] += RETENTION + 1
        fam = adult_family(seed=77, beneficiaries=0)
        tx = store.create(presentation(fam, 5000))
        store.dispense(tx.id, DispenseRequest(
            person=0, finess=FINESS, pharmacist_rpps=PHARMACIST, prescriber_rpps=PRESCRIBER,
            prescribed_on=DAY - dt.timedelta(days=3), dispensed_on=DAY,
            lines=(LineInput(CIP, 1, 1000, 1000, 65),), tiers_payant=TiersPayant(amo=True)))
        kept.append(tx.id)
        assert store.purge() == (0, 12)
        files = _files(data) | _rows(backend.url(data / "transactions.db"))
        assert backend.name == "sqlite" or not _files(data)  # nothing on this PC
        # Generated names repeat across families: the kept (billed) family's are not looked for.
        kept_names = set(_needles(fam, b""))
        found = [(name, fam_.insured.nir[:3] + "...")
                 for fam_, sealed in purged for needle in _needles(fam_, sealed)
                 if needle not in kept_names
                 for name, content in files.items() if needle in content]
        assert not found, f"purged people still in {sorted({f[0] for f in found})}"
        assert store.get(kept[0]).people  # the one within retention still opens
        assert store.get(kept[0]).state is State.DISPENSED
    finally:
        store.close()
        biller.close()


def test_purge_erases_without_holding_up_a_busy_store(tmp_path: Path,
                                                     backend: Backend) -> None:  # noqa: F811
    """The erasure costs little: measured on 500 finished transactions."""
    import time

    now = [1_790_000_000.0]
    biller = backend.biller(tmp_path / "billing.db")
    store = backend.transactions(tmp_path / "tx.db", KEY, biller, clock=lambda: now[0],
                                 retention_s=RETENTION)
    try:
        fam = adult_family(seed=5, beneficiaries=2)
        for n in range(500):
            store.cancel(store.create(presentation(dataclasses.replace(fam), n)).id)
        now[0] += RETENTION + 1
        started = time.perf_counter()
        assert store.purge() == (0, 500)
        took = time.perf_counter() - started
        print(f"purge of 500 with erasure ({backend.name}): {took * 1000:.1f} ms")
        assert took < 2.0
        assert backend.on_postgres or (tmp_path / "tx.db-wal").stat().st_size == 0
    finally:
        store.close()
        biller.close()
