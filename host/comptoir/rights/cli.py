"""`comptoir cache`: status, sync, purge (right to erasure), export-counts.

    comptoir cache [--db PATH] [--key PATH] status [--check]
    comptoir cache [--db PATH] [--key PATH] sync --service URL [--older-than SECONDS]
    comptoir cache [--db PATH] [--key PATH] purge --nir - [--birth-date YYYYMMDD
                                                  --birth-rank N --quality Q | --family]
    comptoir cache [--db PATH] [--key PATH] export-counts [--format json|csv]

Output never holds personal data: counts, versions, sizes. `--nir -` reads the NIR from
standard input, so that it does not stay in the shell history.

The cache is this PC's file (`--db`), or the one the counters share on PostgreSQL: `--config
comptoir.toml` (its `storage.url`, else its file; its `rights.key`), or `--url`. With the
database unreachable: one line on stderr, exit status 4.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from comptoir import config
from comptoir.storage import cli_options
from comptoir.tokens.nir import parse_nir
from comptoir.tokens.reasons import TokenError

from .cache import RightsCache
from .client import RightsClient
from .errors import KeyFileError, RightsError
from .model import BeneficiaryId

DEFAULT_DIR = Path(os.environ.get("COMPTOIR_DATA_DIR", "~/.local/share/comptoir")).expanduser()


def _open(args: argparse.Namespace, **kw: Any) -> RightsCache:
    where: cli_options.Where = args.where
    if not where.shared:
        where.db.parent.mkdir(parents=True, exist_ok=True)
    key = where.key or where.db.with_name("rights.key")
    cache = RightsCache.open(where.db, key, url=where.url or None,
                             password_file=where.password_file, **kw)
    for rebuild in cache.rebuilds:
        done = (f"{rebuild.removed} damaged rows removed from the shared database" if
                where.shared else f"rebuilt, {rebuild.salvaged} rows carried over")
        print(f"warning: the rights cache was unusable ({rebuild.reason}); {done}",
              file=sys.stderr)
    return cache


def _status(args: argparse.Namespace) -> int:
    options = {"integrity": "full", "verify_rows": "all"} if args.check else {}
    cache = _open(args, **options)
    try:
        c = cache.store.counts()
        print(f"database      {args.where.url or args.where.db}")
        print(f"schema        v{c.schema_version}")
        print(f"persons       {c.persons}")
        print(f"families      {c.families}")
        print(f"means         {c.means}")
        print(f"size          {c.file_bytes} bytes")  # the tables' on PostgreSQL
        print(f"check         {'full: ok' if args.check else 'quick: ok'}")
        print(f"rebuilt       {'yes' if cache.rebuilds else 'no'}")
    finally:
        cache.close()
    return 1 if cache.rebuilds else 0


def _sync(args: argparse.Namespace) -> int:
    cache = _open(args, client=RightsClient(args.service))
    try:
        report = cache.sync(older_than=args.older_than)
    finally:
        cache.close()
    print(
        json.dumps(
            {
                "families": report.families,
                "answered": report.answered,
                "unknown": report.unknown,
                "rows_changed": report.rows_changed,
                "oppositions": report.oppositions,
                "failed": report.failed,
                "seconds": round(report.seconds, 3),
            }
        )
    )
    return 0 if not report.failed else 3


def _purge(args: argparse.Namespace) -> int:
    nir = sys.stdin.readline().strip() if args.nir == "-" else args.nir
    try:
        parse_nir(nir)
    except TokenError:
        print("error: not a valid NIR (15 characters with its key)", file=sys.stderr)
        return 2
    cache = _open(args)
    try:
        if args.family:
            removed = cache.purge_family(nir)
        else:
            if args.birth_date is None or args.birth_rank is None or args.quality is None:
                print(
                    "error: give --birth-date, --birth-rank and --quality, or --family",
                    file=sys.stderr,
                )
                return 2
            removed = cache.purge(
                BeneficiaryId(nir, args.birth_date, args.birth_rank, args.quality)
            )
    finally:
        cache.close()
    print(f"removed {removed} row(s); database compacted")
    return 0 if removed else 1


def _export_counts(args: argparse.Namespace) -> int:
    cache = _open(args)
    try:
        counts = cache.counts()
    finally:
        cache.close()
    if args.format == "json":
        print(json.dumps(counts, sort_keys=True))
    else:
        print("name,value")
        for key, value in counts.items():
            if isinstance(value, dict):
                for sub, n in value.items():
                    print(f"{key}.{sub},{n}")
            else:
                print(f"{key},{value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="comptoir cache", description="The offline rights cache.")
    ap.add_argument("--db", default=None, help=f"default: {DEFAULT_DIR / 'rights.db'}")
    ap.add_argument(
        "--key",
        default=None,
        help="key file (32 bytes, mode 0600; created on first run; default: rights.key "
        "beside the file, or the --config's)",
    )
    cli_options.add_arguments(ap)
    sub = ap.add_subparsers(dest="command", required=True)

    st = sub.add_parser("status", help="schema, counts and size; checks the file")
    st.add_argument(
        "--check", action="store_true", help="full integrity_check and authenticate every row"
    )
    st.set_defaults(func=_status)

    sy = sub.add_parser("sync", help="refresh cached families from the rights service")
    sy.add_argument("--service", required=True, help="rights service base URL")
    sy.add_argument(
        "--older-than",
        type=int,
        default=0,
        metavar="SECONDS",
        help="only families whose rights are older than this",
    )
    sy.set_defaults(func=_sync)

    pu = sub.add_parser("purge", help="erase one person (or a family) from the cache")
    pu.add_argument("--nir", required=True, help="insured NIR, or - to read it from stdin")
    pu.add_argument("--birth-date", type=int, metavar="YYYYMMDD")
    pu.add_argument("--birth-rank", type=int)
    pu.add_argument("--quality", type=int, help="0 the insured, 2 spouse, 6 child, 9 other")
    pu.add_argument("--family", action="store_true", help="every person under this NIR")
    pu.set_defaults(func=_purge)

    ex = sub.add_parser("export-counts", help="counts by status and source (no personal data)")
    ex.add_argument("--format", choices=("json", "csv"), default="json")
    ex.set_defaults(func=_export_counts)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        args.where = cli_options.resolve(args, db_of="rights_db", key_of="rights_key",
                                         default_db=DEFAULT_DIR / "rights.db")
        return int(args.func(args))
    except (RightsError, KeyFileError, config.ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    except Exception as exc:  # the shared database unreachable: one line too
        line = None if "where" not in args else cli_options.failure_line(args.where, exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    raise SystemExit(main())
