"""The transaction store: one presentation, one chosen person, one care sheet, never mixed."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from billing_fixtures import CIP, DAY, FINESS, PHARMACIST, PRESCRIBER, adult_family
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comptoir.billing import LineInput, TiersPayant
from comptoir.transactions import (
    DispenseRequest,
    InvalidDispensation,
    InvalidPerson,
    JournalBiller,
    NotFound,
    PersonMismatch,
    State,
    TransactionStore,
    Unavailable,
    WrongState,
    people_of,
)
from comptoir_tools.testkit.billing_synth import presentation

KEY = bytes(range(32))


def request(person: int, **changes: object) -> DispenseRequest:
    base = DispenseRequest(
        person=person, finess=FINESS, pharmacist_rpps=PHARMACIST, prescriber_rpps=PRESCRIBER,
        prescribed_on=DAY - dt.timedelta(days=3), dispensed_on=DAY,
        lines=(LineInput(CIP, 1, 1000, 1000, 65),), tiers_payant=TiersPayant(amo=True),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path):
    biller = JournalBiller(tmp_path / "billing.db")
    s = TransactionStore(tmp_path / "tx.db", KEY, biller)
    yield s
    s.close()
    biller.close()


def snapshot(s: TransactionStore) -> list[tuple]:
    return s.db.execute("SELECT id, state, chosen, invoice_no, updated_at FROM tx").fetchall()


def test_lifecycle_and_sheet_bound_to_chosen_person(store: TransactionStore) -> None:
    fam = adult_family(beneficiaries=2)
    tx = store.create(presentation(fam, 1), board_id="b1", port="/dev/x")
    assert len(tx.id) == 32 and tx.state is State.AWAITING_BENEFICIARY and tx.chosen is None
    assert [p.index for p in tx.people] == [0, 1, 2]
    tx = store.choose(tx.id, 2)
    assert tx.state is State.READY and tx.chosen == 2
    tx = store.dispense(tx.id, request(2))
    assert tx.state is State.DISPENSED and tx.sheet is not None and tx.sheet.invoice_no == 1
    sheet = store.biller.sheet(tx.id)  # type: ignore[union-attr]
    ben = fam.beneficiaries[1]
    assert (sheet.insured_nir, sheet.birth_date, sheet.birth_rank) == ben.identity
    assert tx.sheet.lot is None  # lot still open


def test_single_person_credential_is_ready_at_once(store: TransactionStore) -> None:
    tx = store.create(presentation(adult_family(beneficiaries=0), 1))
    assert tx.state is State.READY and tx.chosen == 0
    with pytest.raises(WrongState):
        store.choose(tx.id, 0)


def test_errors_change_nothing(store: TransactionStore) -> None:
    tx = store.create(presentation(adult_family(beneficiaries=1), 1))
    before = snapshot(store)
    for bad in (2, -1, "1", True, None, 1.0):
        with pytest.raises(InvalidPerson):
            store.choose(tx.id, bad)
    with pytest.raises(NotFound):
        store.choose("0" * 32, 0)
    with pytest.raises(NotFound):
        store.get("../etc")
    with pytest.raises(WrongState):
        store.dispense(tx.id, request(0))  # not chosen yet
    assert snapshot(store) == before
    store.choose(tx.id, 1)
    before = snapshot(store)
    with pytest.raises(WrongState):
        store.choose(tx.id, 0)  # twice
    with pytest.raises(PersonMismatch):
        store.dispense(tx.id, request(0))  # another person of the same family
    with pytest.raises(InvalidDispensation) as e:
        store.dispense(tx.id, request(1, finess="123"))
    assert "finess" in e.value.fields
    assert snapshot(store) == before
    assert store.biller.sheet(tx.id) is None  # type: ignore[union-attr]


def test_cancel_and_expiry(tmp_path: Path) -> None:
    now = [1000.0]
    s = TransactionStore(tmp_path / "tx.db", KEY, None, open_ttl_s=60, retention_s=120,
                         clock=lambda: now[0])
    a = s.create(presentation(adult_family(beneficiaries=1), 1))
    b = s.create(presentation(adult_family(beneficiaries=1), 2))
    assert s.cancel(a.id).state is State.CANCELLED
    with pytest.raises(WrongState):
        s.cancel(a.id)
    now[0] += 61
    assert s.purge() == (1, 0)
    assert s.get(b.id).state is State.CANCELLED
    now[0] += 200
    assert s.purge() == (0, 2)
    assert s.get(a.id).people == ()


def test_expiry_never_cancels_a_billed_transaction(tmp_path: Path) -> None:
    """The journal has the care sheet but this database could not mark the transaction
    dispensed (a full disk, and the dispensing software never retried): expiry finishes it
    from the journal instead of cancelling a billed transaction."""
    now = [1000.0]
    biller = JournalBiller(tmp_path / "billing.db")
    s = TransactionStore(tmp_path / "tx.db", KEY, biller, open_ttl_s=60, retention_s=120,
                         clock=lambda: now[0])
    try:
        billed = s.create(presentation(adult_family(beneficiaries=1), 1))
        s.choose(billed.id, 1)
        sheet = s.dispense(billed.id, request(1)).sheet
        assert sheet is not None
        with s._lock:  # as if the mark had failed: the row still says ready
            s.db.execute("UPDATE tx SET state=?, invoice_no=NULL WHERE id=?",
                         (State.READY, billed.id))
        unbilled = s.create(presentation(adult_family(beneficiaries=1), 2))
        now[0] += 61
        assert s.purge() == (2, 0)
        done = s.get(billed.id)
        assert done.state is State.DISPENSED and done.sheet is not None
        assert done.sheet.invoice_no == sheet.invoice_no
        assert s.get(unbilled.id).state is State.CANCELLED
    finally:
        s.close()
        biller.close()


def test_restart_reopens_sealed_data_and_refuses_a_moved_blob(tmp_path: Path) -> None:
    from tokens_fixtures import NOW, World

    world = World(tmp_path / "world")
    wallet = world.wallet(world.family(beneficiaries=2))
    verified = world.qr(wallet.present_qr(now=NOW))
    s = TransactionStore(tmp_path / "tx.db", tmp_path / "tx.key")
    a = s.create(verified)
    b = s.create(verified)
    raw = [bytes(r[0]) for r in s.db.execute("SELECT sealed FROM tx").fetchall()]
    s.close()
    assert (tmp_path / "tx.key").stat().st_mode & 0o777 == 0o600
    assert all(verified.insured.family_name.encode() not in r for r in raw)
    assert all(verified.insured.nir.encode() not in r for r in raw)
    s = TransactionStore(tmp_path / "tx.db", tmp_path / "tx.key")
    again = s.get(a.id)
    assert [p.ref for p in again.people] == [p.ref for p in people_of(verified)]
    # Swap the two sealed blobs: neither opens under the other's id.
    s.db.execute("UPDATE tx SET sealed=(SELECT sealed FROM tx WHERE id=?) WHERE id=?",
                 (b.id, a.id))
    s._live.clear()
    with pytest.raises(Unavailable):
        s.get(a.id)


def _families(n: int) -> list:
    """Families, some sharing the insured NIR of family 0 (as two credentials of one insured
    person, or relatives put under one NIR)."""
    fams = [adult_family(seed=100 + k, beneficiaries=k % 3) for k in range(n)]
    nir = fams[0].insured.nir
    for k in range(1, n, 2):
        f = fams[k]
        fams[k] = dataclasses.replace(
            f, insured=dataclasses.replace(f.insured, nir=nir),
            beneficiaries=tuple(dataclasses.replace(b, insured_nir=nir) for b in f.beneficiaries))
    return fams


FAMILIES = _families(6)

op = st.one_of(
    st.tuples(st.just("create"), st.integers(0, len(FAMILIES) - 1)),
    st.tuples(st.just("choose"), st.integers(0, 63), st.integers(-1, 3)),  # -1, 3: invalid
    st.tuples(st.just("dispense"), st.integers(0, 63), st.integers(-1, 3)),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=40))
def test_interleavings_never_mix_transactions(tmp_path_factory, ops) -> None:
    d = tmp_path_factory.mktemp("mix")
    biller = JournalBiller(d / "billing.db")
    s = TransactionStore(d / "tx.db", KEY, biller)
    txs: list[tuple[str, int]] = []  # (id, family index)
    expected: dict[str, int] = {}  # id -> chosen person index
    try:
        for o in ops:
            if o[0] == "create":
                tx = s.create(presentation(FAMILIES[o[1]], len(txs) + 1))
                txs.append((tx.id, o[1]))
                if tx.chosen is not None:
                    expected[tx.id] = tx.chosen
                continue
            if not txs:
                continue
            tx_id, _ = txs[o[1] % len(txs)]
            try:
                if o[0] == "choose":
                    s.choose(tx_id, o[2])
                    expected[tx_id] = o[2]
                else:  # -1: the person the transaction is bound to (the usual request)
                    person = expected.get(tx_id, 0) if o[2] == -1 else o[2]
                    s.dispense(tx_id, request(person))
            except (WrongState, InvalidPerson, PersonMismatch, InvalidDispensation):
                pass  # refused: the final check shows it changed nothing
        for tx_id, fam_i in txs:
            view = s.get(tx_id)
            own = people_of(presentation(FAMILIES[fam_i], 1))
            assert [p.ref for p in view.people] == [p.ref for p in own]
            assert view.chosen == expected.get(tx_id)
            sheet = biller.sheet(tx_id)
            assert (sheet is not None) == (view.state is State.DISPENSED)
            if sheet is not None:
                ref = own[expected[tx_id]].ref
                assert sheet.transaction_id == tx_id
                assert (sheet.insured_nir, sheet.birth_date, sheet.birth_rank) == (
                    ref.insured_nir, ref.birth_date, ref.birth_rank)
                assert view.sheet is not None and view.sheet.invoice_no == sheet.invoice_no
    finally:
        s.close()
        biller.close()


_CHOOSE_ON_A_FULL_DISK = """
import resource, signal, sys
sys.path[:0] = {paths!r}
from billing_fixtures import adult_family
from comptoir.transactions import NoRoom, State, TransactionStore
from comptoir_tools.testkit.billing_synth import presentation
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
s = TransactionStore({db!r}, bytes(range(32)), None)
txs = [s.create(presentation(adult_family(beneficiaries=1), i)).id for i in range(40)]
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
import os
sizes = [os.path.getsize(p) for p in {files!r}]
resource.setrlimit(resource.RLIMIT_FSIZE, (max(sizes), hard))  # no file may grow now
chosen = 0
try:
    for tx in txs:
        s.choose(tx, 1)
        chosen += 1
except NoRoom as e:
    print("refused", chosen, "free space" in str(e))
failed = txs[chosen]
print("state", s.get(failed).state, s.get(failed).chosen)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
print("retry", s.choose(failed, 1).state)
"""


def test_choosing_on_a_full_disk_is_no_room_and_can_be_done_again(tmp_path: Path) -> None:
    """A real write error (the file size limit: the WAL cannot grow) while the beneficiary is
    chosen: NoRoom (the API's 507), nothing chosen, and the same choice succeeds with room."""
    import subprocess
    import sys

    db = tmp_path / "tx.db"
    files = [str(db), str(tmp_path / "tx.db-wal")]
    script = _CHOOSE_ON_A_FULL_DISK.format(paths=sys.path, db=str(db), files=files)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    lines = out.stdout.split("\n")
    assert lines[0].startswith("refused ") and lines[0].endswith(" True"), out.stderr[-2000:]
    assert lines[1] == f"state {State.AWAITING_BENEFICIARY} None"
    assert lines[2] == f"retry {State.READY}"
