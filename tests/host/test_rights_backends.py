"""The rights cache on PostgreSQL (issue 17): the cache's own tests run again with
`open_cache` opening it on the worker's real server (test_rights_cache.py is their SQLite run;
the same functions), then what a shared cache shows: a family asked by one counter is fresh at
the others; its rows sealed (AES-GCM bound to the row's lookup key), no NIR in the database; a
row moved to another person never opens; a counter with another key is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import test_rights_cache as same
from pg_fixtures import PgServer, pg_server, pg_url  # noqa: F401 (fixtures)
from rights_fixtures import NOW, client, fam, members, running_service
from test_rights_store import FAMILIES, all_people, assert_never_wrong, fill

from comptoir.rights import RightsCache, Status, WrongKey

SAME_TESTS = [
    "test_offline_for_the_whole_run",
    "test_service_up_refreshes_stale_rights_and_says_so",
    "test_family_sharing_one_nir_each_member_gets_only_their_own_rights",
    "test_same_child_under_two_parents_nirs_are_two_records",
    "test_an_older_credential_never_overrides_a_newer_service_answer",
    "test_sync_refreshes_every_cached_family_and_the_opposition_list",
    "test_status_list_deactivation_blocks_that_phone_only",
    "test_through_the_store_any_order_of_snapshots_gives_the_freshest",
]


class _Databases:
    """One database per cache directory a test names (its key file stays in the directory,
    as on a counter PC)."""

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.urls: dict[Path, str] = {}
        self.opened: list[RightsCache] = []

    def open_cache(self, directory: Path, *, now: int = NOW, policy: Any = None,
                   **kw: Any) -> RightsCache:
        directory = Path(directory)
        if directory not in self.urls:
            self.urls[directory] = self._database()
        cache = RightsCache.open(directory / "rights.db", directory / "rights.key",
                                 policy=policy, clock=lambda: now,
                                 url=self.urls[directory], **kw)
        self.opened.append(cache)
        return cache

    def _database(self) -> str:
        """The database of a cache whose directory is gone (the property test makes and
        deletes hundreds of them), emptied; or a new one."""
        for gone in [d for d in self.urls if not d.exists()]:
            url = self.urls.pop(gone)
            if url not in self.urls.values():
                with psycopg.connect(url, autocommit=True) as db:
                    db.execute("DROP SCHEMA comptoir_rights CASCADE")
                return url
        return self.server.url(self.server.new_database())


@pytest.fixture
def on_postgres(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch  # noqa: F811
                ) -> Iterator[_Databases]:
    dbs = _Databases(pg_server)
    monkeypatch.setattr(same, "open_cache", dbs.open_cache)
    yield dbs
    assert dbs.opened and not any(c.store.on_sqlite for c in dbs.opened)  # all on the server
    for c in dbs.opened:
        c.store._db.close()  # already closed by most tests: closing again is harmless


@pytest.mark.parametrize("name", SAME_TESTS)
def test_the_rights_cache_tests_on_postgresql(name: str, on_postgres: _Databases,
                                              request: pytest.FixtureRequest) -> None:
    test = getattr(same, name)
    inner = getattr(getattr(test, "hypothesis", None), "inner_test", test)
    code = inner.__code__
    wanted = [a for a in code.co_varnames[: code.co_argcount] if a not in ("answers", "rnd")]
    test(**{arg: request.getfixturevalue(arg) for arg in wanted})


def _open(directory: Path, url: str, **kw: Any) -> RightsCache:
    return RightsCache.open(directory / "rights.db", directory / "rights.key",
                            clock=lambda: NOW, url=url, **kw)


def test_a_family_asked_at_one_counter_is_fresh_at_the_others(pg_url: str,  # noqa: F811
                                                             tmp_path: Path) -> None:
    f = fam(31, beneficiaries=2)
    one = tmp_path / "counter-1"
    one.mkdir()
    two = tmp_path / "counter-2"
    two.mkdir()
    with running_service([f]) as svc:
        first = _open(one, pg_url, client=client(svc.url))
        # The keys are the same file on every counter PC (copied by the installer).
        (two / "rights.key").write_bytes((one / "rights.key").read_bytes())
        (two / "rights.key").chmod(0o600)
        assert first.lookup(members(f)[1]).status is Status.FRESH  # asked the service
    # The service is gone; counter 2 has none: the family is fresh there from the database.
    second = _open(two, pg_url)
    for who in members(f):
        answer = second.rights_for(who)
        assert answer.status is Status.FRESH and answer.record is not None
        assert answer.record.who == who  # each member their own record
    assert second.counts()["persons"] == len(members(f))
    first.close()
    second.close()


def test_rows_are_sealed_bound_to_their_person_and_key(pg_url: str,  # noqa: F811
                                                      tmp_path: Path) -> None:
    cache = _open(tmp_path, pg_url)
    fill(cache)
    assert assert_never_wrong(cache) == all_people()
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("SET search_path TO comptoir_rights")  # the cache's own schema
        raw = b"".join(bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode()
                       for table in ("persons", "rosters", "means", "meta")
                       for row in db.execute(f"SELECT * FROM {table}") for v in row)
        for f in FAMILIES:
            assert f.insured.nir.encode() not in raw and f.insured.nir[:13].encode() not in raw
            # A name of 2-3 bytes turns up by chance in kilobytes of ciphertext ('PI' did,
            # once in CI): only names long enough not to are looked for.
            name = f.insured.given_names.encode()
            assert len(name) < 4 or name not in raw
        # The twins' rows swapped: neither opens (the row is bound to its lookup key).
        a, b = members(FAMILIES[0])[2], members(FAMILIES[0])[3]
        la, lb = (cache._cipher.lookup(w.canonical()) for w in (a, b))
        ra = db.execute("SELECT row FROM persons WHERE lookup = %s", (la,)).fetchone()[0]
        rb = db.execute("SELECT row FROM persons WHERE lookup = %s", (lb,)).fetchone()[0]
        db.execute("UPDATE persons SET row = %s WHERE lookup = %s", (rb, la))
        db.execute("UPDATE persons SET row = %s WHERE lookup = %s", (ra, lb))
    for who in (a, b):  # never the other twin's rights: unknown, the rows removed
        assert cache.rights_for(who).status is Status.UNKNOWN  # (test_rights_damage_backends)
    assert [r.removed for r in cache.rebuilds] == [2]
    cache.close()
    # A counter with another key is refused, naming the cause; nothing is overwritten.
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(WrongKey):
        _open(other, pg_url)
    # Erasure: a person's row gone from the shared database.
    cache = _open(tmp_path, pg_url, verify_rows="none")
    victim = members(FAMILIES[1])[0]
    assert cache.purge(victim) == 1
    assert cache.rights_for(victim).status is Status.UNKNOWN
    with psycopg.connect(pg_url) as db:
        db.execute("SET search_path TO comptoir_rights")
        lookup = cache._cipher.lookup(victim.canonical())
        assert db.execute("SELECT count(*) FROM persons WHERE lookup = %s",
                          (lookup,)).fetchone()[0] == 0
    cache.close()


def test_the_daemon_opens_its_rights_cache_on_storage_url(pg_url: str,  # noqa: F811
                                                          tmp_path: Path) -> None:
    from comptoir import config
    from comptoir.stores import open_rights_cache

    def counter(name: str) -> RightsCache:
        cfg = config.from_dict({"paths": {"data_dir": str(tmp_path / name / "data"),
                                          "keys_dir": str(tmp_path / "keys")},
                                "storage": {"url": pg_url}})
        return open_rights_cache(cfg)

    # The daemon's other stores first, in the same database (their tables are there).
    from comptoir.stores import open_biller, open_transactions
    cfg = config.from_dict({"paths": {"data_dir": str(tmp_path / "one" / "data"),
                                      "keys_dir": str(tmp_path / "keys")},
                            "storage": {"url": pg_url}})
    biller = open_biller(cfg)
    open_transactions(cfg, biller, None).close()
    biller.close()
    one, two = counter("one"), counter("two")
    assert not one.store.on_sqlite and not (tmp_path / "one" / "data").exists()
    fill(one, FAMILIES[:3])
    assert assert_never_wrong(two, FAMILIES[:3]) == all_people(FAMILIES[:3])
    one.close()
    two.close()
    (tmp_path / "local").mkdir()  # start_app makes it
    local = open_rights_cache(config.from_dict({"paths": {
        "data_dir": str(tmp_path / "local"), "keys_dir": str(tmp_path / "keys")}}))
    assert local.store.on_sqlite and local.counts()["persons"] == 0  # no url: its own file
    local.close()
