"""The crash test's victim: records synthetic dispensations and exports lots in a loop, as the
daemon would, so that a test can SIGKILL it anywhere and start it again.

    python -m comptoir_tools.testkit.billing_crashdriver --db J --out DIR --count 1000
    python -m comptoir_tools.testkit.billing_crashdriver --url postgresql://… --key K --out DIR

Each run resumes from what the journal holds, re-submitting the last few dispensations (a
daemon killed mid-commit does not know whether its last one got in). Time is simulated: one
dispensation a minute, so lots close by age as well as by size. Prints DONE when every
dispensation is recorded, every lot closed and every lot exported (after READY, printed
once the journal is open, and the index of each dispensation once recorded: the test kills by
progress, not by wall time, so that a fast machine is killed as often as a slow one).
"""

from __future__ import annotations

import argparse
import sys
import time

from comptoir.billing.export import Exporter
from comptoir.billing.journal import Journal
from comptoir_tools.testkit.billing_synth import Synth

START = 1_780_000_000
RESUBMIT = 3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="crashdriver")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", help="the SQLite journal")
    where.add_argument("--url", help="the journal on PostgreSQL (the postgres extra)")
    ap.add_argument("--key", help="the billing key file (with --url)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pharmacies", type=int, default=2)
    ap.add_argument("--lot-size", type=int, default=25)
    ap.add_argument("--lot-max-age", type=int, default=40 * 60)
    # Exports every 75 dispensations find about 3 lots pending, exported in batches of 2: a
    # kill can land between the lots of one batch (crash point export.lot_renamed).
    ap.add_argument("--export-every", type=int, default=75)
    ap.add_argument("--batch-lots", type=int, default=2)
    # Several counters on one journal (--url): this one bills dispensations i with
    # i % stride == offset, and resumes by submitting them all again (a care sheet is
    # recorded once per transaction, whatever the number of attempts).
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--offset", type=int, default=0)
    # --resume (with --stride): start again a few before the first of this counter's
    # dispensations not in the journal, rather than from the first. --pace: seconds slept after
    # each, so that counters killed often still bill beside ones that are not.
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--pace", type=float, default=0.0)
    args = ap.parse_args(argv)

    synth = Synth(args.seed, pharmacies=args.pharmacies, families=16)
    options = {"lot_size": args.lot_size, "lot_max_age": args.lot_max_age}
    if args.url:
        from comptoir.billing.journal_pg import open_journal

        opened = open_journal(args.url, key=args.key, **options)
    else:
        opened = Journal(args.db, **options)
    with opened as journal:
        exporter = Exporter(journal, args.out, batch_lots=args.batch_lots)
        start = max(0, journal.count_sheets() - RESUBMIT) if args.stride == 1 else args.offset
        if args.stride > 1 and args.resume:
            start = _first_missing(journal, synth, args.offset, args.stride, args.count)
            start = max(args.offset, start - RESUBMIT * args.stride)
        print("READY", flush=True)
        for i in range(start, args.count, args.stride):
            journal.record(synth.dispensation(i), now=START + 60 * i)
            print(i, flush=True)
            if args.pace:
                time.sleep(args.pace)
            if i % args.export_every == 0:
                journal.close_due(now=START + 60 * i)
                exporter.export()
        for finess in journal.pharmacies():
            journal.close_lot(finess, now=START + 60 * args.count)
        exporter.export()
    print("DONE", flush=True)
    return 0


def _first_missing(journal: Journal, synth: Synth, offset: int, stride: int, count: int) -> int:
    """This counter's first dispensation not in the journal (it records its own in order)."""
    lo, hi = 0, len(range(offset, count, stride))
    while lo < hi:
        mid = (lo + hi) // 2
        tx_id = synth.dispensation(offset + mid * stride).transaction.transaction_id
        if journal.db.execute("SELECT 1 FROM sheet WHERE transaction_id=?",
                              (tx_id,)).fetchone():
            lo = mid + 1
        else:
            hi = mid
    return offset + lo * stride


if __name__ == "__main__":
    sys.exit(main())
