"""One answer to "did this write fail for want of room or of a working disk?".

SQLITE_FULL (no room, a quota, a file size limit, or a page limit) and SQLITE_IOERR_* (the
write itself failed) both mean: SQLite rolled the statement or the transaction back, nothing of
it was kept, and the same request can be sent again once the disk is fixed. Every store turns
such an error into its own "nothing stored" error (CacheFull, StorageFull, NoRoom); any other
error is a bug or a corrupt file, and is not dressed up as a full disk.

On PostgreSQL the same is the server's disk full (SQLSTATE 53100 disk_full: "could not extend
file ...: No space left on device") or its write failing (58030 io_error): the server rolled
the transaction back. Recognised by the error's `sqlstate` (psycopg is not imported here).
"""

from __future__ import annotations

import sqlite3

_SERVER_WRITE_FAILED = ("53100", "58030")


def write_failed(e: BaseException) -> bool:
    if getattr(e, "sqlstate", None) in _SERVER_WRITE_FAILED:
        return True
    code = getattr(e, "sqlite_errorcode", None)
    # Extended codes carry the primary code in their low byte (SQLITE_IOERR_WRITE = 778).
    return isinstance(e, sqlite3.Error) and code is not None and \
        code & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)
