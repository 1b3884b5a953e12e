"""Billing export at 1 000 000 care sheets on PostgreSQL beside SQLite, same sheets, same run
(issue 17).

    from comptoir_tools.bench.pg_billing import run
    figures = run(url, size=1_000_000)

Both journals are opened with one billing key file. The first `sample` dispensations are
recorded through the real path on each backend (`Journal.record_many`, 5 000 per transaction,
timed: on PostgreSQL each transaction takes the journal's advisory lock and its COMMIT is
synchronous). The SQLite journal is then grown to `size` by bench_billing's bulk recorder (the
same journal `record_many` builds, tests/tools/test_bench_billing.py), and every table of it
(sheets sealed with AES-GCM bound to FINESS, invoice and transaction, lots with their hash
chain, pharmacies, franchise totals) is copied into the PostgreSQL journal with COPY, replacing
its sample: the rows the store writes, loaded fast. PostgreSQL is then VACUUM ANALYZEd.

Each journal is exported whole by the real `Exporter` (every lot from an empty export journal
into an empty directory, files durable), beside a raw read of the same rows through the same
query (`Journal.lot_rows`: rows fetched, sealed texts opened, nothing written): `ratio` = read
seconds / export seconds. Goal: >= 50 000 sheets/s at 1 000 000.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from comptoir.billing import Journal, verify
from comptoir.billing.journal_pg import open_journal
from comptoir_tools.bench.billing import LOT_SIZE, SYNTH, BulkRecorder, _export, _fill, _raw_read
from comptoir_tools.testkit.billing_synth import Synth

TABLES = ("pharmacy", "sheet", "franchise_year", "lot")


def copy_journal(lite: Journal, pg: Journal) -> float:
    """Every row of the SQLite journal into the PostgreSQL one (its own rows dropped first),
    with COPY; -> seconds."""
    raw = pg.db.raw  # the psycopg connection under the journal's adapter
    t = time.perf_counter()
    with raw.transaction():
        raw.execute("TRUNCATE sheet, lot, pharmacy, franchise_year, export")
        for table in TABLES:
            cur = lite.db.execute(f"SELECT * FROM {table}")
            cols = ", ".join(d[0] for d in cur.description)
            with raw.cursor() as pc, pc.copy(f"COPY {table} ({cols}) FROM STDIN") as cp:
                while rows := cur.fetchmany(20_000):
                    for row in rows:
                        cp.write_row(row)
        raw.execute("SELECT setval(pg_get_serial_sequence('sheet', 'seq'), "
                    "(SELECT max(seq) FROM sheet))")
    raw.execute("VACUUM ANALYZE sheet")
    raw.execute("VACUUM ANALYZE lot")
    return time.perf_counter() - t


def run(url: str, size: int = 1_000_000, *, sample: int = 10_000, workers: int = 2,
        repeats: int = 1, directory: str | Path | None = None,
        check: bool = False) -> dict[str, Any]:
    """`check`: also run `billing.verify` on the PostgreSQL journal after the copy (slow)."""
    sample = min(sample, size)
    base = Path(tempfile.mkdtemp(prefix="bench-pg-billing-", dir=directory))
    key = base / "keys" / "billing.key"
    out: dict[str, Any] = {"sheets": size, "sample": sample}
    try:
        with Journal(base / "journal.db", key=key, lot_size=LOT_SIZE) as lite, \
                open_journal(url, key=key, lot_size=LOT_SIZE) as pg:
            journals = {"sqlite": lite, "pg": pg}
            synth = Synth(**SYNTH)  # type: ignore[arg-type]
            for name, j in journals.items():
                out[f"{name}_record_many_per_s"] = round(sample / _fill(j, synth, 0, sample))
            if size > sample:
                with BulkRecorder(lite, workers) as bulk:
                    out["sqlite_bulk_fill_per_s"] = round((size - sample)
                                                          / bulk.fill(sample, size))
            out["copy_to_pg_s"] = round(copy_journal(lite, pg), 1)
            if pg.count_sheets() != size or len(pg.lots()) != len(lite.lots()):
                raise AssertionError("the PostgreSQL journal is not the SQLite one")
            if check:
                out["pg_verify_ok"] = verify(pg).ok
            export: dict[str, list[float]] = {"sqlite": [], "pg": []}
            read: dict[str, list[float]] = {"sqlite": [], "pg": []}
            for _ in range(repeats):
                for name, j in journals.items():
                    seconds, sheets, _bytes, direct, batches = _export(j, base)
                    if sheets != size:
                        raise AssertionError(f"{name}: {sheets} sheets exported, not {size}")
                    export[name].append(seconds)
                    read[name].append(_raw_read(j))
                    out["batches"], out["o_direct"] = batches, direct
            out["lots"] = len(pg.lots())
            out["sqlite_db_mb"] = round((base / "journal.db").stat().st_size / 1e6, 1)
            out["pg_db_mb"] = round(pg.db.execute(
                "SELECT pg_total_relation_size('sheet') + pg_total_relation_size('lot')"
            ).fetchone()[0] / 1e6, 1)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    med = statistics.median
    for name in ("sqlite", "pg"):
        out[f"{name}_export_s"] = round(med(export[name]), 3)
        out[f"{name}_export_per_s"] = round(size / med(export[name]))
        out[f"{name}_raw_read_per_s"] = round(size / med(read[name]))
        out[f"{name}_ratio"] = round(med(read[name]) / med(export[name]), 3)
    out["pg_over_sqlite"] = round(out["pg_export_per_s"] / out["sqlite_export_per_s"], 3)
    out["goal_per_s"] = 50_000
    out["goal_met_pg"] = out["pg_export_per_s"] >= 50_000
    return out
