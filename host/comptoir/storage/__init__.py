"""Storage plumbing shared by every store: open a database, run numbered migrations, tell a
failed write (full disk, I/O error), load a key file safely, seal personal data.

A store (rights cache, transactions, billing journal, export journal, verifier state) keeps
only its own schema steps and its queries. The backend seam is `backend.Dialect`: SQLite is the
one implemented (`sqlite.SQLITE`); a second backend brings its own dialect and connection.
"""

from __future__ import annotations

from .backend import Connection, Dialect
from .errors import KeyFileError, StorageError, Unreachable
from .failures import write_failed
from .keys import KEY_BYTES, check_private, load_or_create_key
from .migrations import Schema, Step, migrate, run_step
from .sealing import NONCE_BYTES, TAG_BYTES, Sealer, derive_key
from .sqlite import SQLITE, checkpoint, open_sqlite
from .transactions import write_transaction

__all__ = [
    "KEY_BYTES",
    "NONCE_BYTES",
    "SQLITE",
    "TAG_BYTES",
    "Connection",
    "Dialect",
    "KeyFileError",
    "Schema",
    "Sealer",
    "Step",
    "StorageError",
    "Unreachable",
    "check_private",
    "checkpoint",
    "derive_key",
    "load_or_create_key",
    "migrate",
    "open_sqlite",
    "run_step",
    "write_failed",
    "write_transaction",
]
