"""Where a maintenance command (`comptoir cache`, `comptoir billing`) finds its store: this
PC's file (`--db`), or the shared PostgreSQL database of the daemon's configuration
(`--config comptoir.toml`, its `storage.url`, or `--url` with `--password-file`), with the
key files the daemon uses.

`failure_line` turns what a command's store raised into the one line the command prints when
the shared database cannot be reached (no traceback, no psycopg text beyond the server's
first line), or None for any other error.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from comptoir import config

from .errors import StorageError, Unreachable


@dataclass(frozen=True, slots=True)
class Where:
    url: str  # "": the file `db`
    password_file: Path | None
    db: Path
    key: Path | None  # None: the command's own default beside `db`

    @property
    def shared(self) -> bool:
        return bool(self.url)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--config", type=Path, default=None,
                    help="the daemon's comptoir.toml: its files, or its storage.url, and its "
                         "keys (paths.keys_dir)")
    ap.add_argument("--url", default=None,
                    help="the shared PostgreSQL database (postgresql://user@host/dbname, no "
                         "password in it)")
    ap.add_argument("--password-file", type=Path, default=None,
                    help="the database password (mode 0600); else PGPASSWORD or ~/.pgpass")


def resolve(args: argparse.Namespace, *, db_of: str, key_of: str, default_db: str | Path
            ) -> Where:
    """`db_of`/`key_of`: the Config properties naming the store's file and key. Explicit
    options win over the configuration's."""
    cfg = config.load(args.config) if args.config is not None else None
    url = args.url or (cfg.storage.url if cfg else "")
    password_file = args.password_file or (cfg.storage.password_file if cfg else None)
    db = args.db or (getattr(cfg, db_of) if cfg else default_db)
    key = args.key or (getattr(cfg, key_of) if cfg else None)
    return Where(url, password_file if url else None, Path(db), None if key is None else
                 Path(key))


def failure_line(where: Where, e: BaseException) -> str | None:
    """The line for a shared database that cannot be reached (or a psycopg missing), else
    None."""
    if not where.shared:
        return None
    if isinstance(e, ModuleNotFoundError) and (e.name or "").startswith("psycopg"):
        return ("storage.url needs the PostgreSQL client: pip install 'comptoir[postgres]'")
    if isinstance(e, Unreachable):
        return f"{e}: nothing done"
    if isinstance(e, StorageError):
        return str(e)
    from .postgres import unavailable

    if unavailable(e):
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"shared database unreachable ({why[:200]}): nothing done"
    return None
