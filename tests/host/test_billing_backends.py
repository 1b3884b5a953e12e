"""The billing journal on PostgreSQL (issue 17): the journal's own tests run again here with
`Journal` opening a database on the worker's real server (test_billing_journal.py is their
SQLite run; the same functions, not copies), then what only a shared journal can show: two
counters numbering one pharmacy's care sheets at once, without gaps or duplicates, lots closed
and chained once, one exporter at a time, personal data sealed in the database too."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import test_billing_journal as same
import test_billing_sealing as sealing
from billing_fixtures import SYNTH, parse_b2
from pg_fixtures import PgServer, pg_server, pg_url  # noqa: F401 (fixtures)

from comptoir.billing import Exporter, Journal, verify
from comptoir.billing.crypto import default_key_path
from comptoir.billing.journal_pg import export_lock, open_journal
from comptoir.storage.postgres import to_postgres

T0 = 1_780_000_000

# Every test of the SQLite run that does not read or edit the SQLite file itself.
SAME_TESTS = [
    "test_lots_numbered_per_pharmacy_and_chained",
    "test_lot_closed_by_age",
    "test_record_is_idempotent_and_refuses_a_different_bill",
    "test_refused_sheet_leaves_nothing",
    "test_record_many_is_all_or_nothing",
    "test_export_files_and_idempotence",
    "test_export_rewrites_a_missing_file_and_removes_dead_temporaries",
    "test_batched_export_writes_the_same_bytes_as_lot_by_lot",
    "test_a_failed_batch_records_nothing_and_leaves_no_temporary",
    "test_tampered_sheet_names_its_lot",
    "test_tampered_amount_column_and_lot_header_detected",
    "test_franchise_running_total_checked",
    "test_removed_lot_breaks_the_chain",
    "test_rehashed_lot_still_breaks_the_chain",
    "test_edited_export_file_names_its_lot",
    "test_cli_list_close_export_verify",
    "test_logs_never_hold_a_full_nir",
]


class _Databases:
    """One database per journal path a test names (a test may open two journals)."""

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.urls: dict[Path, str] = {}
        self.opened: list[Journal] = []

    def url(self, path: Path) -> str:
        path = Path(path)
        if path not in self.urls:
            self.urls[path] = self.server.url(self.server.new_database())
        return self.urls[path]

    def journal(self, path: str | Path, **options: Any) -> Journal:
        key = options.pop("key", None) or default_key_path(Path(path))
        j = open_journal(self.url(Path(path)), key=key, **options)
        j.path = Path(path)  # the name the test knows it by (for _tamper below)
        self.opened.append(j)
        return j

    def tamper(self, path: Path, sql: str, *args: object) -> None:
        with psycopg.connect(self.url(path), autocommit=True) as db:
            db.execute(to_postgres(sql), args)  # type: ignore[arg-type]


@pytest.fixture
def on_postgres(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch  # noqa: F811
                ) -> Iterator[_Databases]:
    dbs = _Databases(pg_server)
    monkeypatch.setattr(same, "Journal", dbs.journal)
    monkeypatch.setattr(same, "_tamper", dbs.tamper)
    monkeypatch.setattr(same, "_cli_journal", lambda d: [
        "--url", dbs.url(d / "j.db"), "--key", str(default_key_path(d / "j.db"))])
    yield dbs
    for j in dbs.opened:
        j.close()


@pytest.mark.parametrize("name", SAME_TESTS)
def test_the_journal_tests_on_postgresql(name: str, on_postgres: _Databases,
                                         request: pytest.FixtureRequest) -> None:
    test = getattr(same, name)
    wanted = test.__code__.co_varnames[: test.__code__.co_argcount]
    args = {arg: request.getfixturevalue(arg) for arg in wanted}
    if "refused_at" in args:  # pragma: no cover (a parametrized test of the SQLite run)
        pytest.skip("parametrized")
    test(**args)


# --- several counters on one journal ------------------------------------------------------------


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "billing.key"  # the installer copies it to every counter PC


def test_two_counters_number_one_pharmacys_sheets_without_gaps_or_duplicates(
        pg_url: str, key: Path) -> None:  # noqa: F811
    counters = [open_journal(pg_url, key=key, lot_size=7) for _ in range(3)]
    n_each = 30
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(counters))

    def bill(i: int, j: Journal) -> None:
        try:
            barrier.wait()
            for k in range(n_each):
                j.record(SYNTH.dispensation(2 * (k * len(counters) + i)), now=T0 + k)
        except BaseException as e:  # pragma: no cover (reported below)
            errors.append(e)

    threads = [threading.Thread(target=bill, args=(i, j)) for i, j in enumerate(counters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    j = counters[0]
    (finess,) = j.pharmacies()  # even dispensations: all of one pharmacy
    invoices = [r[0] for r in j.db.execute(
        "SELECT invoice_no FROM sheet WHERE finess=? ORDER BY invoice_no", (finess,))]
    assert invoices == list(range(1, 3 * n_each + 1))
    lots = j.lots(finess)
    assert [lot.seq for lot in lots] == list(range(1, len(lots) + 1)) and len(lots) == 12
    assert all(lot.count == 7 for lot in lots)
    report = verify(j)
    assert report.ok, report.problems
    for c in counters:
        c.close()


def test_one_counter_exports_at_a_time_and_a_dead_holder_hands_over(
        pg_url: str, key: Path, tmp_path: Path) -> None:  # noqa: F811
    one, two = (open_journal(pg_url, key=key, lot_size=5) for _ in range(2))
    for i in range(10):
        one.record(SYNTH.dispensation(2 * i), now=T0 + i)
    with export_lock(one) as got:
        assert got
        with export_lock(two) as other:
            assert not other  # counter 2 leaves the export to counter 1
        assert Exporter(two, tmp_path / "out2").export().busy  # and its export says so
        report = Exporter(one, tmp_path / "out").export()
        assert report.lots == 2
    with export_lock(two) as got:
        assert got  # released at the end of the block
    holder = export_lock(one)
    assert holder.__enter__()
    one.close()  # the daemon holding it dies: the server drops its lock (once it sees that)
    deadline = time.monotonic() + 5
    while True:
        with export_lock(two) as after:
            if after:
                break
        assert time.monotonic() < deadline, "the lock of a dead holder was never released"
        time.sleep(0.05)
    # The export journal is shared: counter 2 sees both lots exported.
    assert Exporter(two, tmp_path / "out").pending() == []
    two.close()


def test_personal_data_is_sealed_in_the_database_too(pg_url: str, key: Path) -> None:  # noqa: F811
    j = open_journal(pg_url, key=key, lot_size=7)
    ids = [j.record(SYNTH.dispensation(i), now=T0 + i).transaction_id for i in range(20)]
    sheets = sealing._identities(j, ids)
    with psycopg.connect(pg_url) as db:
        raw = b"".join(
            (bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode())
            for table in ("sheet", "lot", "pharmacy", "franchise_year", "meta", "export")
            for row in db.execute(f"SELECT * FROM {table}") for v in row)
    sealing._assert_no_identity(raw, sheets)
    # A blob moved to another row does not open there (the row-bound associated data).
    (a, ia), (b, _) = j.db.execute("SELECT seq, invoice_no FROM sheet WHERE lot=1 ORDER BY seq "
                                   "LIMIT 2").fetchall()
    with psycopg.connect(pg_url, autocommit=True) as db, db.transaction():
        blobs = dict(db.execute("SELECT seq, sealed FROM sheet WHERE seq IN (%s, %s)", (a, b)))
        db.execute("UPDATE sheet SET sealed=%s WHERE seq=%s", (blobs[b], a))
        db.execute("UPDATE sheet SET sealed=%s WHERE seq=%s", (blobs[a], b))
    assert any(f"invoice {ia}: sealed texts do not open" in p for p in verify(j).problems)
    j.close()


def test_a_counter_killed_again_and_again_while_another_bills_loses_and_doubles_nothing(
        pg_url: str, key: Path, tmp_path: Path) -> None:  # noqa: F811
    """Two counters' billing processes on one journal: counter A is SIGKILLed at random
    moments (and at random crash points) and restarted while counter B bills on; at the end
    every care sheet is there once, numbered per FINESS 1..n without a gap, in exactly one
    lot, every lot exported once, the chain verifying."""
    import collections
    import random
    import subprocess
    import sys

    import test_billing_crash as crash

    from comptoir.billing.crashpoints import POINTS

    out = tmp_path / "out"  # the export folder every counter writes to (a share)
    counter = ["--url", pg_url, "--key", str(key), "--stride", "2"]
    # The key file exists before both start (the installer copied it).
    open_journal(pg_url, key=key).close()
    b = subprocess.Popen([sys.executable, "-m", "comptoir_tools.testkit.billing_crashdriver",
                          *counter, "--offset", "1", "--out", str(out),
                          "--count", str(crash.COUNT)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rng = random.Random(17)
    outcomes: collections.Counter[str] = collections.Counter()
    for _ in range(12):
        chosen = f"{rng.choice(POINTS)}:{rng.randint(1, 10)}" if rng.random() < 0.4 else None
        result = crash._run([*counter, "--offset", "0"], out, chosen,
                            (rng.randint(1, 40), rng.uniform(0.0, 0.01)))
        outcomes[result] += 1
        if result == "done":
            break
    if result != "done":
        outcomes[crash._run([*counter, "--offset", "0"], out, None, None)] += 1
    _, b_err = b.communicate(timeout=120)
    assert b.returncode == 0, b_err
    assert outcomes["killed"] + outcomes["crashed"] >= 5, outcomes

    with open_journal(pg_url, key=key) as j:
        Exporter(j, out).export()  # the next round exports what the last one left
        expected = sorted(f"T1-{i:08d}" for i in range(crash.COUNT))
        assert sorted(r[0] for r in j.db.execute("SELECT transaction_id FROM sheet")) == expected
        for finess in j.pharmacies():
            invoices = [r[0] for r in j.db.execute(
                "SELECT invoice_no FROM sheet WHERE finess=? ORDER BY invoice_no", (finess,))]
            assert invoices == list(range(1, len(invoices) + 1)), finess
        assert j.db.execute("SELECT COUNT(*) FROM sheet WHERE lot IS NULL").fetchone()[0] == 0
        report = verify(j, out)
        assert report.ok, report.problems
        assert report.sheets == crash.COUNT and report.unexported == 0
    in_b2 = collections.Counter(
        str(r["transaction"]) for p in out.rglob("*.b2") for r in parse_b2(p)
        if r["type"] == "200")
    assert in_b2 == collections.Counter(expected)
