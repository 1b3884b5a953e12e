"""A crash between the billing journal's commit and the transactions database's update
(issue 15): the journal has the care sheet, the transaction still says ready. After the
restart the transaction shows its care sheet and the event stream says it is dispensed; while
running, the next read does the same. On both backends: this PC's files, and the PostgreSQL
database the counters share (both stores in it, as `comptoir.stores` opens them)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from backend_fixtures import Backend, backend, pg_server  # noqa: F401 (fixtures)
from billing_fixtures import adult_family
from test_transactions import KEY, request

from comptoir.api import EventFeed
from comptoir.opener import TransactionOpener
from comptoir.transactions import JournalBiller, State, TransactionStore
from comptoir_tools.testkit.billing_synth import presentation

HERE = Path(__file__).resolve().parent

CHILD = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[2])
    from pathlib import Path
    from billing_fixtures import adult_family
    from test_transactions import KEY, request
    from comptoir.transactions import JournalBiller, TransactionStore
    from comptoir_tools.testkit.billing_synth import presentation

    d, url = Path(sys.argv[1]), sys.argv[3]
    if url:  # the shared database, as comptoir.stores opens it with storage.url
        from comptoir.billing.journal_pg import open_journal
        from comptoir.transactions.store_pg import open_store
        biller = JournalBiller(d / "billing.db",
                               opener=lambda: open_journal(url, key=d / "billing.key"))
        store = open_store(url, KEY, biller)
    else:
        biller = JournalBiller(d / "billing.db", key=d / "billing.key")
        store = TransactionStore(d / "transactions.db", KEY, biller)
    tx = store.create(presentation(adult_family(beneficiaries=0), 1))
    print(tx.id, flush=True)

    class CrashOnMark:  # the process dies right after the journal's commit
        def __init__(self, db):
            self._db = db
        def execute(self, sql, *args):
            if sql.startswith("UPDATE tx SET state=?, invoice_no=?"):
                os._exit(137)
            return self._db.execute(sql, *args)
        def __getattr__(self, name):
            return getattr(self._db, name)

    store.db = CrashOnMark(store.db)
    store.dispense(tx.id, request(0))
""")


def test_a_crash_after_the_journal_commit_is_recovered_at_start(
        backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    url = backend.url(tmp_path) or ""  # one database for both stores, as the daemon's
    run = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(HERE), url],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 137, run.stderr
    tx_id = run.stdout.strip()
    if url:  # the daemon restarted on the same database
        biller = backend.biller(tmp_path, key=tmp_path / "billing.key")
        store = backend.transactions(tmp_path, KEY, biller)
    else:  # on the same files
        biller = JournalBiller(tmp_path / "billing.db", key=tmp_path / "billing.key")
        store = TransactionStore(tmp_path / "transactions.db", KEY, biller)
    try:
        sheet = biller.sheet(tx_id)
        assert sheet is not None  # the journal committed it
        row = store.db.execute("SELECT state FROM tx WHERE id=?", (tx_id,)).fetchone()
        assert row[0] == State.READY  # the crash left the transaction behind
        feed = EventFeed()
        TransactionOpener(store, feed)
        sub = feed.subscribe()
        assert store.recover_billed() == [tx_id]  # what start_app does at start
        view = store.get(tx_id)
        assert view.state is State.DISPENSED and view.sheet is not None
        assert view.sheet.invoice_no == sheet.invoice_no
        _, kind, data = sub.queue.get_nowait()
        assert kind == "transaction" and data["action"] == "dispensed" and data["recovered"]
        assert data["transaction"] == tx_id and data["invoice_no"] == sheet.invoice_no
        assert store.recover_billed() == []  # once
    finally:
        store.close()
        biller.close()


def test_a_billed_transaction_left_ready_shows_its_sheet_on_read(
        backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    biller = backend.biller(tmp_path / "billing.db")
    store = backend.transactions(tmp_path / "tx.db", KEY, biller)
    feed = EventFeed()
    TransactionOpener(store, feed)
    sub = feed.subscribe()
    try:
        tx = store.create(presentation(adult_family(beneficiaries=0), 1))
        sheet = store.dispense(tx.id, request(0)).sheet
        assert sheet is not None
        while not sub.queue.empty():
            sub.queue.get_nowait()
        with store._lock:  # as if the mark had failed (a full disk), the daemon still running
            store.db.execute("UPDATE tx SET state=?, invoice_no=NULL WHERE id=?",
                             (State.READY, tx.id))
        view = store.get(tx.id)
        assert view.state is State.DISPENSED and view.sheet is not None
        assert view.sheet.invoice_no == sheet.invoice_no
        _, kind, data = sub.queue.get_nowait()
        assert (kind, data["action"], data["recovered"]) == ("transaction", "dispensed", True)
        assert store.get(tx.id).state is State.DISPENSED and sub.queue.empty()
    finally:
        store.close()
        biller.close()
