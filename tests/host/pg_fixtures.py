"""A real PostgreSQL server for the tests, started by the tests themselves.

One server per pytest process (so per xdist worker), made by `comptoir_tools.testkit.pg_local`
(initdb and pg_ctl in a temporary folder, unix socket there, fsync off, run as `nobody` under
root; the twin uses the same module). Every test gets a database of its own (`CREATE DATABASE`),
so tests stay independent and run in any order.

Import the fixtures into a test module: `from pg_fixtures import pg_server, pg_url`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from comptoir_tools.testkit.pg_local import PgServer, PostgresMissing, remove_server, start_server

__all__ = ["PgServer", "pg_server", "pg_url"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        server = start_server()
    except PostgresMissing as e:
        pytest.fail(str(e))
    try:
        yield server
    finally:
        remove_server(server)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a new, empty database on the worker's server (for this test only)."""
    return pg_server.url(pg_server.new_database())
