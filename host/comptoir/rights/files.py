"""The rights cache's file itself: checks SQLite makes only lazily (a zero-length or truncated
file must not be mistaken for an empty or shorter database), and moving a suspect file aside."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from .errors import CacheCorrupt

_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_file(path: Path) -> None:
    """Header checks SQLite itself does lazily: a zero-length or truncated file must not be
    mistaken for an empty or shorter database."""
    size = path.stat().st_size
    if size == 0:
        raise CacheCorrupt("database file is empty (truncated to 0 bytes)")
    with path.open("rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise CacheCorrupt("not a SQLite database (bad header)")
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change_counter, pages = struct.unpack(">II", header[24:32])
    valid_for = struct.unpack(">I", header[92:96])[0]
    # The page count in the header is trustworthy only when valid-for equals the change counter.
    if valid_for == change_counter and pages and size < pages * page_size:
        raise CacheCorrupt(f"database file truncated ({size} bytes, header says {pages} pages)")
    if size % page_size:
        raise CacheCorrupt("database file length is not a whole number of pages")


def quarantine(path: Path, stamp: int) -> Path | None:
    """Move a suspect database (and its WAL and shared-memory files) aside, kept for support;
    returns the new path of the main file."""
    moved = None
    for suffix in ("", "-wal", "-shm"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            dst = path.with_name(f"{path.name}.corrupt-{stamp}{suffix}")
            os.replace(src, dst)
            if suffix == "":
                moved = dst
    return moved
