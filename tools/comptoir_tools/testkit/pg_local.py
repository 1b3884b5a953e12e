"""A throw-away PostgreSQL server on this machine, for the tests and the twin (issue 17).

`initdb` and `pg_ctl` from Debian's `postgresql` package (`make sysdeps` installs it), a data
directory in a temporary folder, its unix socket in that folder (no TCP), a free port number,
fsync off (what runs on it does not survive a power cut; the server's crash safety is
PostgreSQL's own) unless `durable` (the benchmark: fsync, full page writes and synchronous
commits on, PostgreSQL's defaults). As root, initdb refuses to run: the server then runs as
`nobody`, the folder given to it. `tests/host/pg_fixtures.py` starts one per pytest worker;
`comptoir twin --counters N` is to start one when no URL is given.

    with local_server() as server:
        url = server.url(server.new_database())
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

SUPERUSER = "comptoir"
RUN_AS = "nobody"  # when run as root
SETTINGS_FAST = "-F -c synchronous_commit=off -c full_page_writes=off"
SETTINGS_DURABLE = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"


class PostgresMissing(RuntimeError):
    """No local server can be had: initdb or pg_ctl is not installed, or initdb failed."""


def _temp_base(as_root: bool) -> str | None:
    """Where the server's folder goes: the usual temporary folder, unless the server runs as
    another user (under root) who cannot get through it (a TMPDIR inside a 0700 folder)."""
    base = Path(tempfile.gettempdir()).resolve()
    if not as_root:
        return None
    if all(p.stat().st_mode & 0o001 for p in (base, *base.parents)):
        return None
    return "/tmp"


def binary(name: str) -> str | None:
    """A PostgreSQL program: on the PATH, or the newest of Debian's /usr/lib/postgresql/*."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running server: `url(db)` for a database on it; `stop()` and `start()` to take it
    away and bring it back."""

    folder: Path
    port: int
    _pg_ctl: str
    _as_user: tuple[str, ...]
    durable: bool = False
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
        options = f"-p {self.port} -k {self.folder} -c listen_addresses='' "
        options += (SETTINGS_DURABLE if self.durable else SETTINGS_FAST) + " -c max_connections=200"
        self._ctl("-l", str(self.folder / "server.log"), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "stop")

    def new_database(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(self._count)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        return name


def start_server(*, durable: bool = False) -> PgServer:
    """initdb in a new temporary folder, then start the server there (`durable`: fsync and
    synchronous commits on, for honest benchmark figures)."""
    initdb, pg_ctl = binary("initdb"), binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise PostgresMissing("PostgreSQL's initdb and pg_ctl are missing: run `make sysdeps` "
                              "(it installs Debian's postgresql package)")
    as_user: tuple[str, ...] = ()
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root. runuser lives in /usr/sbin, which a root shell
        # started with `su` (no login) or a service's PATH may not list.
        runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
        if runuser is None:
            raise PostgresMissing(f"running as root, PostgreSQL must run as {RUN_AS!r}, "
                                  "and runuser (util-linux) is missing")
        as_user = (runuser, "-u", RUN_AS, "--")
    folder = Path(tempfile.mkdtemp(prefix="comptoir-pg-", dir=_temp_base(bool(as_user))))
    if as_user:
        user = pwd.getpwnam(RUN_AS)
        os.chown(folder, user.pw_uid, user.pw_gid)
    folder.chmod(0o700)
    try:
        subprocess.run([*as_user, initdb, "-D", str(folder / "data"), "-U", SUPERUSER,
                        "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync",
                        "--no-instructions"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=120)
        server = PgServer(folder, free_port(), pg_ctl, as_user, durable)
        server.start()
    except subprocess.CalledProcessError as e:
        shutil.rmtree(folder, ignore_errors=True)
        said = (e.stderr or b"").decode(errors="replace").strip().splitlines()
        raise PostgresMissing(f"{Path(str(e.cmd[len(as_user)])).name} failed in {folder}: "
                              f"{said[-1] if said else 'exit status ' + str(e.returncode)}"
                              ) from e
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return server


def remove_server(server: PgServer) -> None:
    """Stop the server (if it runs) and delete its folder."""
    with contextlib.suppress(subprocess.CalledProcessError):  # stopped already
        server.stop("immediate")
    shutil.rmtree(server.folder, ignore_errors=True)


@contextlib.contextmanager
def local_server(*, durable: bool = False) -> Iterator[PgServer]:
    server = start_server(durable=durable)
    try:
        yield server
    finally:
        remove_server(server)
