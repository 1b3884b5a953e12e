"""The transactions store on PostgreSQL (issue 17): the store's own tests run again here with
`TransactionStore` opening a database on the worker's real server (test_transactions.py is
their SQLite run; the same functions), then what a shared store shows: a transaction opened at
one counter is chosen for and dispensed at another, its personal data sealed in the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import test_transactions as same
from pg_fixtures import PgServer, pg_server, pg_url  # noqa: F401 (fixtures)
from test_transactions import KEY, request

from comptoir.transactions import JournalBiller, State, StorageUnavailable, TransactionStore
from comptoir.transactions.store_pg import open_store
from comptoir_tools.testkit.billing_synth import presentation

SAME_TESTS = [
    "test_lifecycle_and_sheet_bound_to_chosen_person",
    "test_single_person_credential_is_ready_at_once",
    "test_errors_change_nothing",
    "test_cancel_and_expiry",
    "test_expiry_never_cancels_a_billed_transaction",
    "test_interleavings_never_mix_transactions",
    "test_restart_reopens_sealed_data_and_refuses_a_moved_blob",
]


class _Databases:
    """One database per store path a test names."""

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.urls: dict[Path, str] = {}
        self.opened: list[TransactionStore] = []

    def store(self, path: str | Path, key: Any, biller: Any = None, **options: Any
              ) -> TransactionStore:
        path = Path(path)
        if path not in self.urls:
            self.urls[path] = self.server.url(self.server.new_database())
        s = open_store(self.urls[path], key, biller, **options)
        self.opened.append(s)
        return s


@pytest.fixture
def on_postgres(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch  # noqa: F811
                ) -> Iterator[_Databases]:
    dbs = _Databases(pg_server)
    monkeypatch.setattr(same, "TransactionStore", dbs.store)
    yield dbs
    for s in dbs.opened:
        s.close()


@pytest.fixture
def store(on_postgres: _Databases, tmp_path: Path) -> Iterator[TransactionStore]:
    biller = JournalBiller(tmp_path / "billing.db")
    yield on_postgres.store(tmp_path / "tx.db", KEY, biller)
    biller.close()


@pytest.mark.parametrize("name", SAME_TESTS)
def test_the_transaction_tests_on_postgresql(name: str, on_postgres: _Databases,
                                             request: pytest.FixtureRequest) -> None:
    test = getattr(same, name)
    inner = getattr(getattr(test, "hypothesis", None), "inner_test", test)
    code = inner.__code__
    wanted = [a for a in code.co_varnames[: code.co_argcount] if a != "ops"]
    test(**{arg: request.getfixturevalue(arg) for arg in wanted})


def test_a_transaction_opened_at_one_counter_is_dispensed_at_another(
        pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    from billing_fixtures import adult_family

    biller = JournalBiller(tmp_path / "billing.db")
    one, two = open_store(pg_url, KEY, biller), open_store(pg_url, KEY, biller)
    fam = adult_family(beneficiaries=2)
    opened = one.create(presentation(fam, 1), port="counter-1")
    assert opened.state is State.AWAITING_BENEFICIARY
    assert two.get(opened.id).people == opened.people  # unsealed at counter 2, same people
    two.choose(opened.id, 1)
    done = one.dispense(opened.id, request(1))
    assert done.state is State.DISPENSED and done.sheet is not None
    assert two.get(opened.id).sheet == done.sheet
    with psycopg.connect(pg_url) as db:
        raw = b"".join(bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode()
                       for row in db.execute("SELECT * FROM tx") for v in row)
    nir = fam.insured.nir
    assert nir.encode() not in raw and nir[:13].encode() not in raw
    one.close()
    two.close()
    biller.close()


def test_the_daemon_opens_its_stores_on_storage_url_and_they_outlive_a_server_restart(
        pg_server: PgServer, pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    from billing_fixtures import adult_family

    from comptoir import config
    from comptoir.stores import open_biller, open_transactions

    cfg = config.from_dict({"paths": {"data_dir": str(tmp_path / "data"),
                                      "keys_dir": str(tmp_path / "keys")},
                            "storage": {"url": pg_url}})
    biller = open_biller(cfg)
    store = open_transactions(cfg, biller, None)
    assert not (tmp_path / "data").exists()  # no SQLite file: everything on the server

    def bill(seed: int) -> int:
        tx = store.create(presentation(adult_family(seed, beneficiaries=0), 1))
        done = store.dispense(tx.id, request(0))
        assert done.sheet is not None
        return done.sheet.invoice_no

    assert bill(1) == 1
    pg_server.stop()
    pg_server.start()
    # The first statement on each lost connection fails (its outcome unknown: nothing is
    # acknowledged), the next ones run on a new connection, opened by the store itself.
    for _ in range(3):
        try:
            invoice = bill(2)
            break
        except StorageUnavailable:
            continue
    assert invoice == 2  # numbering goes on without a gap
    store.close()
    biller.close()


def test_opening_on_a_full_server_disk_is_no_room_and_can_be_done_again(
        pg_server: PgServer, tmp_path: Path) -> None:  # noqa: F811
    """The server's disk full (the store's tables on a small tmpfs: ENOSPC, for real): a
    presentation opens no transaction, NoRoom (the API's 507) saying so, nothing half
    written; a choice is made whole or not at all; with room again both go through."""
    from billing_fixtures import adult_family
    from pg_full_disk import small_tablespace

    from comptoir.transactions import NoRoom

    with small_tablespace(pg_server, "320k") as (url, make_room):
        biller = JournalBiller(tmp_path / "billing.db")  # this PC's disk has room
        store = open_store(url, KEY, biller)
        opened: list[str] = []
        with pytest.raises(NoRoom) as refused:
            for seed in range(3000):
                opened.append(store.create(presentation(adult_family(seed), 1)).id)
        assert "no transaction opened" in str(refused.value) and len(opened) > 3
        assert sorted(store.ids()) == sorted(opened)  # nothing of the refused one
        last = opened[-1]
        try:  # an update may fit in its page, or not: whole either way
            chosen = store.choose(last, 1).state
        except NoRoom:
            chosen = store.get(last).state
            assert chosen is State.AWAITING_BENEFICIARY and store.get(last).chosen is None
        make_room()
        if chosen is State.AWAITING_BENEFICIARY:
            store.choose(last, 1)
        done = store.dispense(last, request(1))
        assert done.state is State.DISPENSED and done.sheet is not None
        again = store.create(presentation(adult_family(9999), 1))
        assert again.state is State.AWAITING_BENEFICIARY
        store.close()
        biller.close()
