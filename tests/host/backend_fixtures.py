"""The same test on both backends (issue 17): a `backend` fixture, parametrized "sqlite" and
"postgresql", that opens each store as the daemon does on that backend: this PC's files, or
a database on the worker's real PostgreSQL server (pg_fixtures) with the key files on the PC.

    from backend_fixtures import Backend, backend, pg_server  # noqa: F401 (fixtures)

    def test_x(backend: Backend, tmp_path):
        cache = backend.open_cache(tmp_path)
        biller = backend.biller(tmp_path / "billing.db")

On PostgreSQL every place a test names (a directory for the rights cache, a file path for the
other stores) gets a database of its own, the same one when the test opens it again (a daemon
restarted), so tests stay independent as with their files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pg_fixtures import PgServer, pg_server
from rights_fixtures import NOW

from comptoir.billing import Journal
from comptoir.billing.crypto import default_key_path
from comptoir.rights import RightsCache, StalenessPolicy
from comptoir.transactions import JournalBiller, TransactionStore

__all__ = ["Backend", "backend", "pg_server"]


class Backend:
    def __init__(self, name: str, server: PgServer | None) -> None:
        self.name = name
        self.server = server
        self._urls: dict[Path, str] = {}

    @property
    def on_postgres(self) -> bool:
        return self.server is not None

    def url(self, place: str | Path) -> str | None:
        """The database of this place (None on SQLite: the place is the file)."""
        if self.server is None:
            return None
        place = Path(place)
        if place not in self._urls:
            self._urls[place] = self.server.url(self.server.new_database())
        return self._urls[place]

    def open_cache(self, directory: Path, *, now: int = NOW,
                   policy: StalenessPolicy | None = None, **kw: Any) -> RightsCache:
        return RightsCache.open(directory / "rights.db", directory / "rights.key",
                                policy=policy, clock=kw.pop("clock", lambda: now),
                                url=self.url(directory), **kw)

    def journal(self, path: str | Path, **options: Any) -> Journal:
        url = self.url(path)
        if url is None:
            return Journal(path, **options)
        from comptoir.billing.journal_pg import open_journal

        key = options.pop("key", None) or default_key_path(Path(path))
        return open_journal(url, key=key, **options)

    def biller(self, path: str | Path, **options: Any) -> JournalBiller:
        url = self.url(path)
        if url is None:
            return JournalBiller(path, **options)
        from comptoir.billing.journal_pg import open_journal

        key = options.pop("key", None) or default_key_path(Path(path))
        return JournalBiller(path, opener=lambda: open_journal(url, key=key, **options))

    def transactions(self, path: str | Path, key: Any, biller: Any = None,
                     **options: Any) -> TransactionStore:
        url = self.url(path)
        if url is None:
            return TransactionStore(path, key, biller, **options)
        from comptoir.transactions.store_pg import open_store

        return open_store(url, key, biller, **options)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", None)
    server: PgServer = request.getfixturevalue(pg_server.__name__)
    return Backend("postgresql", server)
