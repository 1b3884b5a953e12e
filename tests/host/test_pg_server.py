"""The PostgreSQL server the tests start themselves: real, and one database per test."""

from __future__ import annotations

import psycopg
from pg_fixtures import pg_server, pg_url  # noqa: F401 (fixtures)


def test_each_test_gets_its_own_empty_database_on_a_real_server(pg_server, pg_url):  # noqa: F811
    with psycopg.connect(pg_url, autocommit=True) as db:
        version = db.execute("SHOW server_version_num").fetchone()[0]
        assert int(version) >= 130000
        assert db.execute("SHOW fsync").fetchone()[0] == "off"
        db.execute("CREATE TABLE t (x int)")
    other = pg_server.url(pg_server.new_database())
    with psycopg.connect(other, autocommit=True) as db:
        assert db.execute("SELECT to_regclass('t')").fetchone()[0] is None
