"""A real PostgreSQL server for the tests, started by the tests themselves.

One server per pytest process (so per xdist worker): `initdb` and `pg_ctl` from Debian's
`postgresql` package (`make sysdeps` installs it), a data directory in a temporary folder, its
unix socket in that folder (no TCP), a free port number, fsync off (the tests do not survive a
power cut; the server's crash safety is PostgreSQL's own). As root, initdb refuses to run: the
server then runs as `nobody`, the folder given to it. Every test gets a database of its own
(`CREATE DATABASE`), so tests stay independent and run in any order.

Import the fixtures into a test module: `from pg_fixtures import pg_server, pg_url`.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SUPERUSER = "comptoir"
_RUN_AS = "nobody"  # when the tests run as root


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running server: `url(db)` for a database on it; `stop()` and `start()` for the tests
    that take it away and bring it back."""

    folder: Path
    port: int
    _pg_ctl: str
    _as_user: tuple[str, ...]
    _count: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.folder}&port={self.port}"

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self._as_user, self._pg_ctl, "-D", str(self.data), "-w", "-s", *args],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses='' -F "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._ctl("-l", str(self.folder / "server.log"), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "stop")

    def new_database(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(self._count)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        return name


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.fail("PostgreSQL's initdb and pg_ctl are missing: run `make sysdeps` "
                    "(it installs Debian's postgresql package)")
    folder = Path(tempfile.mkdtemp(prefix="comptoir-pg-"))
    as_user: tuple[str, ...] = ()
    if os.geteuid() == 0:
        user = pwd.getpwnam(_RUN_AS)
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ("runuser", "-u", _RUN_AS, "--")
    folder.chmod(0o700)
    subprocess.run([*as_user, initdb, "-D", str(folder / "data"), "-U", SUPERUSER,
                    "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    server = PgServer(folder, _free_port(), pg_ctl, as_user)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # a test stopped it
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a new, empty database on the worker's server (for this test only)."""
    return pg_server.url(pg_server.new_database())
