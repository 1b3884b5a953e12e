"""A full disk on the PostgreSQL server's side, for real: a database whose tables are in a
tablespace on a small tmpfs mounted for the test, so that the server's own writes fail with
ENOSPC ("could not extend file ...: No space left on device", SQLSTATE 53100 disk_full) as on
a back-office PC whose disk filled up; remounted larger, there is room again.

Mounting needs root (the tests' usual case: the server then runs as `nobody`); without it the
test is skipped, saying why. The tablespace and the mount are removed at the end.
"""

from __future__ import annotations

import itertools
import os
import pwd
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest

from comptoir_tools.testkit.pg_local import RUN_AS, PgServer

_count = itertools.count(1)


@contextmanager
def small_tablespace(server: PgServer, size: str) -> Iterator[tuple[str, Callable[[], None]]]:
    """(the URL of a new database whose tables go on a tmpfs of `size`, make_room())."""
    if os.geteuid() != 0:
        pytest.skip("a full disk on the server's side needs root, to mount a small tmpfs")
    n = next(_count)
    where = server.folder / f"tiny-{n}"
    where.mkdir()
    user = pwd.getpwnam(RUN_AS)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700,uid={user.pw_uid},"
         f"gid={user.pw_gid}", f"comptoir-tiny-{n}", str(where)],
        capture_output=True, text=True)
    if mounted.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()})")
    name = server.new_database()
    space = f"tiny_{os.getpid()}_{n}"
    try:
        with psycopg.connect(server.url(), autocommit=True) as db:
            db.execute(f"CREATE TABLESPACE {space} LOCATION '{where}'")
            # The new tables go there (the catalogs stay on the server's own disk).
            db.execute(f'ALTER DATABASE "{name}" SET default_tablespace = {space}')

        def make_room() -> None:
            subprocess.run(["mount", "-o", "remount,size=64m", str(where)], check=True)

        yield server.url(name), make_room
    finally:
        with psycopg.connect(server.url(), autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            db.execute(f"DROP TABLESPACE IF EXISTS {space}")
        subprocess.run(["umount", str(where)], check=False)
        where.rmdir()
