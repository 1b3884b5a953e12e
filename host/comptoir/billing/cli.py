"""`comptoir billing`: list, close-lot, export, verify. Exit status 0 ok, 1 problems found,
2 usage error (also: no journal, a key file missing, readable by others or not this journal's,
a sealed sheet that does not open during an export, a full disk or a failed write, the shared
database unreachable: one line on stderr, no traceback), 3 another counter is exporting now.

The journal is this PC's file (`--db`), or the shared PostgreSQL database of the daemon's
configuration (`--config comptoir.toml` with `storage.url`, or `--url`; the key
`paths.keys_dir/billing.key`, or `--key`)."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path

from comptoir import config
from comptoir.storage import cli_options

from .crypto import KeyFileError, default_key_path
from .errors import IntegrityError, JournalError
from .export import KINDS, Exporter
from .journal import Journal
from .progress import ProgressBar
from .verify import verify

DEFAULT_DB = "billing.sqlite3"
PROGRESS_MIN_LOTS = 20  # below this an export is instant: no bar


def _euros(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _cmd_list(j: Journal, args: argparse.Namespace) -> int:
    exported = Exporter(j, args.out or ".").exported()
    print(f"{'finess':9}  {'lot':>6}  {'sheets':>6}  {'invoices':>17}  {'total':>12}  "
          f"{'amo':>12}  {'amc':>10}  {'franchise':>9}  exported  hash")
    for lot in j.lots(args.pharmacy):
        done = len(exported.get((lot.finess, lot.seq), {})) == len(KINDS)
        print(f"{lot.finess:9}  {lot.seq:6d}  {lot.count:6d}  "
              f"{lot.first_invoice:8d}-{lot.last_invoice:<8d}  {_euros(lot.total):>12}  "
              f"{_euros(lot.amo):>12}  {_euros(lot.amc):>10}  {_euros(lot.franchise):>9}  "
              f"{'yes' if done else 'no ':8}  {lot.hash[:12]}")
    for finess, (count, _since) in sorted(j.open_sheets().items()):
        if count and (not args.pharmacy or finess == args.pharmacy):
            print(f"{finess:9}  {'open':>6}  {count:6d}")
    return 0


def _cmd_close(j: Journal, args: argparse.Namespace) -> int:
    if args.due:
        lots = j.close_due()
    else:
        targets = [args.pharmacy] if args.pharmacy else j.pharmacies()
        lots = [lot for f in targets if (lot := j.close_lot(f)) is not None]
    for lot in lots:
        print(f"closed lot {lot.finess}/{lot.seq}: {lot.count} sheets, hash {lot.hash[:12]}")
    if not lots:
        print("no open sheets to close")
    return 0


def _cmd_export(j: Journal, args: argparse.Namespace) -> int:
    exporter = Exporter(j, args.out)
    pending = exporter.pending(args.pharmacy)
    show = args.progress if args.progress is not None else (
        sys.stderr.isatty() and len(pending) >= PROGRESS_MIN_LOTS)
    bar = ProgressBar(len(j.lots(args.pharmacy)), "export") if show else None
    report = exporter.export(args.pharmacy, progress=bar)
    if bar:
        bar.close()
    if report.busy:
        print("another counter is exporting this journal now: nothing done here; run the "
              "export again later", file=sys.stderr)
        return 3
    print(f"exported {report.lots} lots ({report.sheets} sheets, {report.files} files, "
          f"{report.bytes} bytes); {report.skipped} already exported; "
          f"{report.restored} missing files written again")
    return 0


def _cmd_verify(j: Journal, args: argparse.Namespace) -> int:
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    bar = ProgressBar(len(j.lots()), "verify") if show else None
    report = verify(j, args.out, deep=not args.quick, progress=bar)
    if bar:
        bar.close()
    for p in report.problems:
        print(p)
    print(f"{'OK' if report.ok else 'FAILED'}: {report.lots} lots, {report.sheets} sheets, "
          f"{report.files} files checked, {len(report.problems)} problems"
          + (f"; {report.unexported} lots not exported yet" if report.unexported else ""))
    return 0 if report.ok else 1


def _open(where: cli_options.Where, key: str | Path, max_age: int) -> Journal:
    if not where.shared:
        return Journal(where.db, key=key, create_key=False, lot_max_age=max_age)
    from .journal_pg import open_journal

    return open_journal(where.url, key=key, password_file=where.password_file,
                        create_key=False, lot_max_age=max_age)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="comptoir billing",
                                 description="Care sheets, lots and their export.")
    ap.add_argument("--db", default=os.environ.get("COMPTOIR_BILLING_DB"),
                    help="billing journal (default: $COMPTOIR_BILLING_DB, the --config's, or "
                         "billing.sqlite3)")
    ap.add_argument("--key", default=os.environ.get("COMPTOIR_BILLING_KEY"),
                    help="billing key file (32 bytes, mode 0600; default: $COMPTOIR_BILLING_KEY "
                         "or keys/billing.key beside the journal, the daemon's layout; "
                         "never created here)")
    cli_options.add_arguments(ap)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list lots and open sheets")
    p.add_argument("--pharmacy", metavar="FINESS")
    p.add_argument("--out", help="export directory (to show what is exported)")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("close-lot", help="close the open sheets into a lot now")
    p.add_argument("--pharmacy", metavar="FINESS", help="only this pharmacy")
    p.add_argument("--due", action="store_true", help="only lots older than the maximum age")
    p.add_argument("--max-age", type=int, default=24 * 3600, metavar="SECONDS")
    p.set_defaults(func=_cmd_close)

    p = sub.add_parser("export", help="write the files of every lot not yet exported")
    p.add_argument("--out", required=True, help="export directory")
    p.add_argument("--pharmacy", metavar="FINESS")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal, for long exports)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("verify", help="check the lot chain and the exported files")
    p.add_argument("--out", help="export directory to check against the journal")
    p.add_argument("--quick", action="store_true", help="skip re-deriving each sheet's records")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.set_defaults(func=_cmd_verify)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    try:
        args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        where = cli_options.resolve(args, db_of="billing_db", key_of="billing_key",
                                    default_db=DEFAULT_DB)
    except config.ConfigError as e:
        print(f"comptoir billing: {e}", file=sys.stderr)
        return 2
    if not where.shared and not where.db.exists():
        print(f"no billing journal at {where.db}", file=sys.stderr)
        return 2
    max_age = getattr(args, "max_age", 24 * 3600)
    key = where.key or default_key_path(where.db)
    try:
        with _open(where, key, max_age) as j:
            return int(args.func(j, args))
    except (KeyFileError, JournalError, IntegrityError) as e:
        print(f"comptoir billing: {e}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as e:  # e.g. the export directory cannot be written
        print(f"comptoir billing: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the shared database unreachable: one line too
        line = cli_options.failure_line(where, e)
        if line is None:
            raise
        print(f"comptoir billing: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
