"""A damaged row of the rights cache, the same tests on both backends (issue 17): this PC's
SQLite file, and the PostgreSQL database the counters share. The damage is the same on both:
a row's sealed bytes changed where they are stored (bytes flipped, two people's rows swapped),
as a bad sector, a faulty restore or a hand edit would. On both the damaged row is never
served (its person is unknown, nobody else's rights are shown), the cache says it rebuilt, the
rows that still authenticate are kept, and the person's family is asked of the service again.
On SQLite the file is rebuilt (rows carried over); on PostgreSQL the damaged rows are removed
from the shared database (one counter cannot move the others' database aside)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_fixtures import PgServer, pg_server  # noqa: F401 (fixture)
from rights_fixtures import NOW, client, members, running_service
from test_rights_store import FAMILIES, all_people, assert_never_wrong, fill

from comptoir.rights import BeneficiaryId, RightsCache, Status


class Backend:
    def __init__(self, name: str, directory: Path, url: str | None) -> None:
        self.name, self.directory, self.url = name, directory, url

    def open(self, **kw: Any) -> RightsCache:
        return RightsCache.open(self.directory / "rights.db", self.directory / "rights.key",
                                clock=lambda: NOW, url=self.url, **kw)

    def _edit(self, sql: str, *args: object) -> Any:
        if self.url is None:
            db = sqlite3.connect(self.directory / "rights.db", isolation_level=None)
            try:
                return db.execute(sql, args).fetchall()
            finally:
                db.close()
        with psycopg.connect(self.url, autocommit=True) as pg:
            pg.execute("SET search_path TO comptoir_rights")
            cur = pg.execute(sql.replace("?", "%s"), args)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def row(self, cache: RightsCache, who: BeneficiaryId) -> tuple[bytes, bytes]:
        lookup = cache._cipher.lookup(who.canonical())
        ((blob,),) = self._edit("SELECT row FROM persons WHERE lookup = ?", lookup)
        return lookup, bytes(blob)

    def put(self, lookup: bytes, blob: bytes) -> None:
        self._edit("UPDATE persons SET row = ? WHERE lookup = ?", blob, lookup)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    url = None
    if request.param == "postgresql":
        server: PgServer = request.getfixturevalue("pg_server")
        url = server.url(server.new_database())
    return Backend(request.param, tmp_path, url)


@pytest.fixture
def filled(backend: Backend) -> Iterator[Callable[..., RightsCache]]:
    """Fills the cache, lets the test damage it, and opens it again as a restarted daemon."""
    cache = backend.open()
    fill(cache)
    cache.store.checkpoint()
    opened: list[RightsCache] = [cache]

    def reopen(**kw: Any) -> RightsCache:
        opened[-1].close()
        opened.append(backend.open(**kw))
        return opened[-1]

    yield reopen
    opened[-1].close()


def _flipped(blob: bytes) -> bytes:
    middle = len(blob) // 2
    return blob[:middle] + bytes(b ^ 0x5A for b in blob[middle:middle + 3]) + blob[middle + 3:]


def test_a_damaged_row_found_at_lookup_is_never_served_and_the_rest_is_kept(
        backend: Backend, filled: Callable[..., RightsCache]) -> None:
    victim = members(FAMILIES[3])[0]
    cache = filled(verify_rows="none")
    lookup, blob = backend.row(cache, victim)
    backend.put(lookup, _flipped(blob))
    assert cache.rebuilds == []
    answer = cache.rights_for(victim)
    assert answer.status is Status.UNKNOWN and answer.record is None
    assert len(cache.rebuilds) == 1 and "authentication" in cache.rebuilds[0].reason
    assert assert_never_wrong(cache) == all_people() - 1
    # The family is asked again of the service at the next look-up.
    with running_service([FAMILIES[3]]) as svc:
        cache.client = client(svc.url)
        assert cache.lookup(victim).status is Status.FRESH
        assert svc.requests == 1
    assert assert_never_wrong(cache) == all_people()
    cache = filled(verify_rows="all")  # nothing damaged is left behind
    assert cache.rebuilds == []


def test_two_peoples_rows_swapped_show_neither(backend: Backend,
                                               filled: Callable[..., RightsCache]) -> None:
    a, b = members(FAMILIES[0])[2], members(FAMILIES[0])[3]  # the twins
    cache = filled(verify_rows="none")
    (la, ra), (lb, rb) = backend.row(cache, a), backend.row(cache, b)
    backend.put(la, rb)
    backend.put(lb, ra)
    assert cache.rights_for(a).status is Status.UNKNOWN
    assert cache.rights_for(b).status is Status.UNKNOWN
    assert len(cache.rebuilds) == 1
    assert assert_never_wrong(cache) == all_people() - 2


def test_a_damaged_row_is_caught_at_open_with_full_verification(
        backend: Backend, filled: Callable[..., RightsCache]) -> None:
    victim = members(FAMILIES[0])[2]
    cache = filled(verify_rows="none")
    lookup, blob = backend.row(cache, victim)
    backend.put(lookup, _flipped(blob))
    cache = filled(verify_rows="all")
    assert len(cache.rebuilds) == 1 and "authentication" in cache.rebuilds[0].reason
    assert cache.rebuilds[0].salvaged == all_people() - 1
    assert cache.rights_for(victim).status is Status.UNKNOWN
    assert assert_never_wrong(cache) == all_people() - 1
