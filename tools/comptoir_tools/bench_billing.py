"""Billing export throughput, its growth with the journal's size, beside raw SQLite reads.

    from comptoir_tools.bench_billing import run
    figures = run()   # a dict; `make bench` reports it

One journal grows through the sizes (10 000, 100 000, 1 000 000 care sheets by default, two
pharmacies, lots of 1 000). At each size every lot is exported into a fresh directory with the
real exactly-once path (render, temp file, fsync, rename, directory fsync, export-journal
commit): `export_per_s` = sheets / seconds. `raw_read_per_s` reads the same rows through the
same query with nothing done to them; `ratio` = export / raw read. `growth` = seconds per sheet
at the largest size / at the smallest (1.0 = linear). Recording (checking, pricing, rendering,
inserting; batches of 5 000 per transaction) is timed too, for information.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from comptoir.billing import Exporter, Journal
from comptoir_tools.billing_synth import Synth

LOT_SIZE = 1000
BATCH = 5000
START = 1_780_000_000


def _fill(journal: Journal, synth: Synth, start: int, stop: int) -> float:
    t = time.perf_counter()
    for lo in range(start, stop, BATCH):
        hi = min(stop, lo + BATCH)
        journal.record_many([synth.dispensation(i) for i in range(lo, hi)], now=START + hi)
    for finess in journal.pharmacies():
        journal.close_lot(finess, now=START + stop)
    return time.perf_counter() - t


def _raw_read(journal: Journal) -> float:
    t = time.perf_counter()
    n = 0
    for lot in journal.lots():
        rows = journal.db.execute(
            "SELECT body, b2, csv FROM sheet WHERE finess=? AND lot=? ORDER BY seq",
            (lot.finess, lot.seq),
        ).fetchall()
        n += len(rows)
    return time.perf_counter() - t


def _export(journal: Journal, base: Path) -> tuple[float, int, int]:
    out = Path(tempfile.mkdtemp(dir=base, prefix="export-"))
    try:
        # A fresh directory and an empty export journal: every lot is exported again.
        with journal.write() as db:
            db.execute("DELETE FROM export")
        t = time.perf_counter()
        report = Exporter(journal, out).export()
        return time.perf_counter() - t, report.sheets, report.bytes
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000),
    repeats: int = 3,
    directory: str | None = None,
) -> dict[str, object]:
    sizes = tuple(sorted(sizes))
    base = Path(tempfile.mkdtemp(prefix="bench-billing-", dir=directory))
    synth = Synth(3, pharmacies=2, families=200)
    rows: list[dict[str, float | int]] = []
    try:
        with Journal(base / "journal.db", lot_size=LOT_SIZE) as journal:
            have = 0
            for n in sizes:
                record_s = _fill(journal, synth, have, n)
                recorded = n - have
                have = n
                # Large sizes take long enough to need no repeats; small ones are noisy.
                k = repeats if n <= 100_000 else 1
                exports = [_export(journal, base) for _ in range(k)]
                export_s = statistics.median(e[0] for e in exports)
                sheets, size_bytes = exports[0][1], exports[0][2]
                assert sheets == n, (sheets, n)
                raw_s = statistics.median(_raw_read(journal) for _ in range(k))
                rows.append({
                    "sheets": n,
                    "record_per_s": round(recorded / record_s),
                    "export_s": round(export_s, 3),
                    "export_per_s": round(n / export_s),
                    "export_mb_per_s": round(size_bytes / export_s / 1e6, 1),
                    "raw_read_per_s": round(n / raw_s),
                    "ratio": round(raw_s / export_s, 3),
                    "db_mb": round((base / "journal.db").stat().st_size / 1e6, 1),
                })
    finally:
        shutil.rmtree(base, ignore_errors=True)
    small, large = rows[0], rows[-1]
    growth = (large["export_s"] / large["sheets"]) / (small["export_s"] / small["sheets"])
    return {
        "sizes": rows,
        "export_per_s": large["export_per_s"],
        "goal_per_s": 50_000,
        "growth": round(growth, 2),
        "lot_size": LOT_SIZE,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_billing")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", help="where the journal and exports go (default: temp)")
    args = ap.parse_args(argv)
    print(json.dumps(run(tuple(args.sizes), args.repeats, args.dir), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
