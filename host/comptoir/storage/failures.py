"""One answer to "did this write fail for want of room or of a working disk?".

SQLITE_FULL (no room, a quota, a file size limit, or a page limit) and SQLITE_IOERR_* (the
write itself failed) both mean: SQLite rolled the statement or the transaction back, nothing of
it was kept, and the same request can be sent again once the disk is fixed. Every store turns
such an error into its own "nothing stored" error (CacheFull, StorageFull, NoRoom); any other
error is a bug or a corrupt file, and is not dressed up as a full disk.
"""

from __future__ import annotations

import sqlite3


def write_failed(e: BaseException) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    # Extended codes carry the primary code in their low byte (SQLITE_IOERR_WRITE = 778).
    return isinstance(e, sqlite3.Error) and code is not None and \
        code & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)
