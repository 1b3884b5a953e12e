"""Billing export throughput, its growth with the journal's size, beside raw SQLite reads.

    from comptoir_tools.bench.billing import run
    figures = run()   # a dict; `make bench` reports it

One journal grows through the sizes (10 000, 100 000, 1 000 000 care sheets by default, two
pharmacies, lots of 1 000), recorded through the real path (check, price, number, render,
insert; batches of 5 000 dispensations per transaction, timed for information). At each size
the export journal is emptied and every lot is exported into a fresh, empty directory with the
real exactly-once path (Exporter defaults: read each lot, open each sheet's sealed texts
(AES-256-GCM with the journal's key), render, write its three files to
temporaries with O_DIRECT where allowed, fsync each, rename, fsync the directory, one
export-journal commit per batch of up to 64 lots): `export_per_s` = sheets / seconds, all
files durable at the end. `raw_read_per_s` reads the same rows through the same query
(Journal.lot_rows, memory-mapped as in the export, sealed texts opened) and does nothing with
them; `ratio` = raw
read seconds / export seconds. `growth` = seconds per sheet at the largest size / at the
smallest (1.0 = linear).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path

from comptoir.billing import Exporter, Journal
from comptoir.billing.crypto import SheetCipher, join_texts, load_or_create_key
from comptoir.billing.journal import input_digest, person_key
from comptoir.billing.pricing import build_care_sheet
from comptoir.billing.render import sheet_texts
from comptoir_tools.testkit.billing_synth import Synth

LOT_SIZE = 1000
BATCH = 5000
START = 1_780_000_000
SYNTH = {"seed": 3, "pharmacies": 2, "families": 200}


def _fill(journal: Journal, synth: Synth, start: int, stop: int) -> float:
    """Record dispensations start..stop through Journal.record_many (the daemon's path)."""
    t = time.perf_counter()
    for lo in range(start, stop, BATCH):
        hi = min(stop, lo + BATCH)
        journal.record_many([synth.dispensation(i) for i in range(lo, hi)], now=START + hi)
    for finess in journal.pharmacies():
        journal.close_lot(finess, now=START + stop)
    return time.perf_counter() - t


# --- bulk recording, for the bench's large journals only -----------------------------------
# Recording is CPU-bound in Python (check, price, render: ~0.3 ms a sheet), so a journal of
# 1 000 000 sheets takes minutes on one core. The bulk path spreads checking, pricing and
# rendering over worker processes and leaves numbering, inserting and lot closing to this
# one, and builds the very journal _fill builds (tests/tools/test_bench_billing.py compares
# every table): the franchise running total is per person and year, so each worker owns a
# fixed share of the synthetic families (dispensation i is for a member of family
# i % families) and sees their dispensations in order; sealing (the journal's key, read from
# its key file) is done there too; invoice numbers of a
# fresh journal fed in order are known in advance (one sequence per pharmacy, checked on
# insert); lots close in the same transaction as the sheet that fills them.


def _bulk_worker(conn: Connection, part: int, parts: int, synth_args: dict[str, int],
                 key: bytes | str) -> None:
    cipher = SheetCipher(key if isinstance(key, bytes) else load_or_create_key(key, create=False))
    synth = Synth(synth_args["seed"], pharmacies=synth_args["pharmacies"],
                  families=synth_args["families"])
    npharm, nfam = len(synth.pharmacies), len(synth.presentations)
    charged: dict[tuple[str, int], int] = {}
    seen = 0  # dispensations before this one were priced (maybe recorded by _fill)
    while True:
        job = conn.recv()
        if job is None:
            return
        lo, hi, now = job
        rows = []
        for i in range(seen, hi):
            if i % nfam % parts != part:  # dispensation i is for someone of family i % nfam
                continue
            d = synth.dispensation(i)
            key = person_key(d.transaction.patient, cipher)
            year = d.dispensed_on.year
            sheet = build_care_sheet(d, franchise_used=charged.get((key, year), 0))
            if sheet.franchise:
                charged[key, year] = charged.get((key, year), 0) + sheet.franchise
            if i < lo:
                continue
            sheet = replace(sheet, invoice_no=i // npharm + 1)
            body, b2, csv = sheet_texts(sheet)
            sealed = cipher.seal(sheet.finess, sheet.invoice_no, sheet.transaction_id,
                                 join_texts(body, b2))
            rows.append((i, d.transaction.transaction_id, input_digest(d, cipher), sheet.finess,
                         sheet.invoice_no, now, key, year, sheet.total, sheet.amo, sheet.amc,
                         sheet.patient, sheet.franchise, sealed, csv))
        seen = hi
        conn.send(rows)


class BulkRecorder:
    """Goes on filling a journal with Synth(**SYNTH) dispensations in order, as _fill would
    (the journal holds 0..start-1 of them, recorded by either)."""

    def __init__(self, journal: Journal, workers: int = 2,
                 synth_args: dict[str, int] | None = None) -> None:
        self.journal = journal
        if journal.key_path is None:
            raise ValueError("bulk recording needs a journal opened with a key file")
        key = str(journal.key_path)  # the workers read the key file themselves
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs = []
        for part in range(workers):
            mine, theirs = ctx.Pipe()
            p = ctx.Process(target=_bulk_worker, args=(theirs, part, workers,
                                                       synth_args or SYNTH, key),
                            daemon=True)
            p.start()
            self.conns.append(mine)
            self.procs.append(p)

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for p in self.procs:
            p.join(timeout=10)

    def __enter__(self) -> BulkRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fill(self, start: int, stop: int) -> float:
        t = time.perf_counter()
        chunks = [(lo, min(stop, lo + BATCH)) for lo in range(start, stop, BATCH)]
        if chunks:
            self._ask(*chunks[0])
        for k, (lo, hi) in enumerate(chunks):
            parts = [conn.recv() for conn in self.conns]
            if k + 1 < len(chunks):
                self._ask(*chunks[k + 1])  # the workers price the next chunk meanwhile
            rows = sorted((r for part in parts for r in part), key=lambda r: r[0])
            assert [r[0] for r in rows] == list(range(lo, hi))
            self._insert(rows, START + hi)
        for finess in self.journal.pharmacies():
            self.journal.close_lot(finess, now=START + stop)
        return time.perf_counter() - t

    def _ask(self, lo: int, hi: int) -> None:
        for conn in self.conns:
            conn.send((lo, hi, START + hi))

    def _insert(self, rows: list[tuple[object, ...]], now: int) -> None:
        j = self.journal
        with j.write() as db:
            state = {f: [n, c, s] for f, n, c, s in db.execute(
                "SELECT finess, next_invoice, open_count, open_since FROM pharmacy")}
            franchise: dict[tuple[object, object], int] = {}
            for row in rows:
                finess, invoice = row[3], row[4]
                if finess not in state:
                    db.execute("INSERT INTO pharmacy VALUES (?, 1, 0, NULL)", (finess,))
                    state[finess] = [1, 0, None]
                st = state[finess]
                if invoice != st[0]:
                    raise RuntimeError("bulk recording needs a fresh journal fed in order")
                db.execute(
                    "INSERT INTO sheet (transaction_id, input_digest, finess, invoice_no, "
                    "recorded_at, person_key, year, total, amo, amc, patient, franchise, lot, "
                    "sealed, csv) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                    row[1:],
                )
                st[0], st[1] = invoice + 1, st[1] + 1
                st[2] = now if st[2] is None else st[2]
                if row[12]:
                    franchise[row[6], row[7]] = franchise.get((row[6], row[7]), 0) + row[12]
                if st[1] >= j.lot_size:
                    db.execute("UPDATE pharmacy SET next_invoice=?, open_count=?, open_since=? "
                               "WHERE finess=?", (*st, finess))
                    j._close(finess, now)  # the lot closes as in record(), same transaction
                    st[1], st[2] = 0, None
            db.executemany("UPDATE pharmacy SET next_invoice=?, open_count=?, open_since=? "
                           "WHERE finess=?", [(*st, f) for f, st in state.items()])
            db.executemany(
                "INSERT INTO franchise_year VALUES (?, ?, ?) ON CONFLICT DO UPDATE "
                "SET charged = charged + excluded.charged",
                [(k, y, c) for (k, y), c in franchise.items()],
            )


def _raw_read(journal: Journal) -> float:
    t = time.perf_counter()
    n = 0
    with journal.bulk_reads():
        for lot in journal.lots():
            n += len(journal.lot_rows(lot.finess, lot.seq))
    return time.perf_counter() - t


def _export(journal: Journal, base: Path) -> tuple[float, int, int, bool, int]:
    out = Path(tempfile.mkdtemp(dir=base, prefix="export-"))
    try:
        # A fresh directory and an empty export journal: every lot is exported again.
        with journal.write() as db:
            db.execute("DELETE FROM export")
        t = time.perf_counter()
        report = Exporter(journal, out).export()
        return (time.perf_counter() - t, report.sheets, report.bytes, report.direct,
                report.batches)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000),
    repeats: int = 3,
    directory: str | None = None,
    workers: int = 2,
) -> dict[str, object]:
    """The smallest size is recorded through Journal.record_many, the others (if `workers`)
    through BulkRecorder: the same journal, faster."""
    sizes = tuple(sorted(sizes))
    base = Path(tempfile.mkdtemp(prefix="bench-billing-", dir=directory))
    synth = Synth(**SYNTH)
    rows: list[dict[str, float | int | str]] = []
    bulk: BulkRecorder | None = None
    try:
        with Journal(base / "journal.db", lot_size=LOT_SIZE) as journal:
            have = 0
            for n in sizes:
                if have and workers:
                    bulk = bulk or BulkRecorder(journal, workers)
                    record_s, how = bulk.fill(have, n), f"bulk x{workers}"
                else:
                    record_s, how = _fill(journal, synth, have, n), "record_many"
                recorded = n - have
                have = n
                # Large sizes take long enough to need no repeats; small ones are noisy.
                k = repeats if n <= 100_000 else 1
                exports = [_export(journal, base) for _ in range(k)]
                export_s = statistics.median(e[0] for e in exports)
                sheets, size_bytes, direct, batches = exports[0][1:]
                assert sheets == n, (sheets, n)
                raw_s = statistics.median(_raw_read(journal) for _ in range(k))
                rows.append({
                    "sheets": n,
                    "fill": how,
                    "fill_per_s": round(recorded / record_s),
                    "export_s": round(export_s, 3),
                    "export_per_s": round(n / export_s),
                    "export_mb_per_s": round(size_bytes / export_s / 1e6, 1),
                    "raw_read_per_s": round(n / raw_s),
                    "ratio": round(raw_s / export_s, 3),
                    "db_mb": round((base / "journal.db").stat().st_size / 1e6, 1),
                    "batches": batches,
                })
    finally:
        if bulk:
            bulk.close()
        shutil.rmtree(base, ignore_errors=True)
    small, large = rows[0], rows[-1]
    growth = (large["export_s"] / large["sheets"]) / (small["export_s"] / small["sheets"])
    return {
        "sizes": rows,
        "export_per_s": large["export_per_s"],
        "goal_per_s": 50_000,
        "growth": round(growth, 2),
        "lot_size": LOT_SIZE,
        "o_direct": direct,
    }


def _spaced(n: object) -> str:
    return f"{n:,}".replace(",", " ")


def markdown(r: dict[str, object]) -> str:
    rows: list[dict[str, object]] = r["sizes"]  # type: ignore[assignment]
    keys = list(rows[0])
    table = ("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n"
             + "\n".join("| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows))
    mode = "O_DIRECT" if r["o_direct"] else "ordinary writes"
    large = _spaced(rows[-1]["sheets"])
    return (
        "## Billing export (issue 8)\n\n"
        "Export of care sheets to the transmission, accounts and JSON files, every lot from "
        "a fresh state (empty export journal, empty directory), each sheet's sealed texts "
        "opened (AES-256-GCM, one blob a sheet), all files durable (written "
        f"with {mode}, each fsync'd, renamed, directory fsync'd, one export-journal commit "
        "per batch of up to 64 lots; docs/billing.md), beside raw SQLite reads of the same rows "
        "through the same query in the same run (`ratio` = read time / export time). Goal "
        f"≥ {_spaced(r['goal_per_s'])} sheets/s at 1 000 000; at {large}: "
        f"{_spaced(r['export_per_s'])}/s. "
        "Linear growth: "
        f"time per sheet at the largest size / at the smallest = {r['growth']}. "
        "`fill_per_s`: recording the sheets added since the previous size (check, price, "
        "number, render, insert; 5 000 per commit), through `Journal.record_many` (one core) "
        "or the bench's bulk path (pricing and rendering in worker processes, the same "
        "journal).\n\n" + table + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_billing")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", help="where the journal and exports go (default: temp)")
    ap.add_argument("--workers", type=int, default=2,
                    help="bulk recording processes beyond the first size (0: record_many)")
    args = ap.parse_args(argv)
    r = run(tuple(args.sizes), args.repeats, args.dir, args.workers)
    print(json.dumps(r, indent=2))
    print(markdown(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
