"""Three counters of one pharmacy, two reader boards each, on one PostgreSQL server (issue 17):
10 000 interleaved QR presentations, real signed tokens of 60 generated families, every phone
shown at one board at a time and moved to a board of another counter between rounds (the
patient comes back another day at another counter). Each counter is a real `comptoir run`
process with its own configuration; each board the firmware's link code on a real
pseudo-terminal (counters_fixtures). The pharmacists then dispense transactions through the
API of the counter that opened each (a random 2 000 of them: see DISPENSED). Every verdict,
transaction and care sheet must be the presenting family's, none doubled, none missing, the
care sheets numbered 1..n for the pharmacy's FINESS.

COMPTOIR_COUNTERS_PRESENTATIONS sets the count (default 10 000)."""

from __future__ import annotations

import collections
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from billing_fixtures import FINESS
from counters_fixtures import Counter, Pharmacy, wait_for
from pg_fixtures import pg_server, pg_url  # noqa: F401 (fixtures)
from test_api import dispensation

from comptoir.transactions import State
from comptoir_link import frames as F

PRESENTATIONS = int(os.environ.get("COMPTOIR_COUNTERS_PRESENTATIONS", "10000"))
# Care sheets: a random 2 000 of the transactions are dispensed (all of them cost 78 s more on
# 2 cores, measured; COMPTOIR_COUNTERS_DISPENSED=10000 does it).
DISPENSED = int(os.environ.get("COMPTOIR_COUNTERS_DISPENSED", "2000"))
COUNTERS, BOARDS, FAMILIES, ROUNDS = 3, 2, 60, 2


@pytest.fixture
def pharmacy(tmp_path: Path, pg_url: str) -> Iterator[Pharmacy]:  # noqa: F811
    p = Pharmacy(tmp_path, pg_url, families=FAMILIES)
    try:
        for _ in range(COUNTERS):
            p.add_counter(BOARDS)
        for c in p.counters:  # the first one makes the keys the others share
            p.start(c)
        yield p
    finally:
        p.stop()


def test_ten_thousand_presentations_at_three_counters_each_bound_to_its_own_person(
        pharmacy: Pharmacy) -> None:
    rng = random.Random(2017)
    boards = [b for c in pharmacy.counters for b in c.boards]
    counter_of = {b.path: c for c in pharmacy.counters for b in c.boards}
    wait_for(lambda: all(b.up for b in boards), 30, "every board's link up")
    phones = pharmacy.phones
    start = time.monotonic()
    per_round = PRESENTATIONS // ROUNDS
    for r in range(ROUNDS):
        # Each phone at one board (of another counter each round), the families' turns mixed.
        visits = [k % FAMILIES for k in range(per_round)]
        rng.shuffle(visits)
        for k in visits:
            boards[(k + 2 * r) % len(boards)].queue(phones[k])
        wait_for(lambda: all(b.pending == 0 for b in boards), 300, f"round {r}'s verdicts")
    verified = time.monotonic() - start

    # 1. Every presentation got its verdict on its own board: the family's own choice.
    sent = 0
    for b in boards:
        assert set(b.verdicts) == set(b.sent)
        for oid, (phone, _cti, _text) in b.sent.items():
            n = len(phone.family.beneficiaries)
            want = ((F.V_CHOOSE_BENEFICIARY, 0, f"choose beneficiary ({n + 1})") if n
                    else (F.V_ACCEPTED, 0, "accepted"))
            assert b.verdicts[oid] == want, (b.name, oid, b.verdicts[oid])
        sent += len(b.sent)
    assert sent == ROUNDS * per_round

    # 2. One transaction per presentation, holding the presenting family, at its board.
    owner = {cti.hex(): (b, phone) for b in boards
             for phone, cti, _ in b.sent.values() if cti is not None}
    assert len(owner) == sent  # every presentation id distinct
    biller, store = pharmacy.stores()
    try:
        # A verdict goes to the board as soon as the presentation is verified; its transaction
        # is opened right after, from the daemon's event queue.
        wait_for(lambda: len(store.ids()) >= sent, 30, "every transaction opened")
        ids = store.ids()
        assert len(ids) == sent
        txs = [store.get(t) for t in ids]
        by_id = {tx.id: tx for tx in txs}
        assert sorted(tx.presentation_id for tx in txs) == sorted(owner)  # none doubled/missing
        todo: dict[int, list[tuple[str, int, int]]] = collections.defaultdict(list)
        to_dispense = set(rng.sample(sorted(ids), min(DISPENSED, len(ids))))
        for tx in txs:
            b, phone = owner[tx.presentation_id]
            fam = phone.family
            assert tx.port == b.path
            assert tx.people[0].ref.insured_nir == fam.insured.nir
            assert [p.ref.insured_nir for p in tx.people] == [fam.insured.nir] * len(tx.people)
            assert [p.given_names for p in tx.people[1:]] == [
                x.given_names for x in fam.beneficiaries]
            assert tx.state is (State.AWAITING_BENEFICIARY if fam.beneficiaries
                                else State.READY)
            if tx.id in to_dispense:
                todo[counter_of[b.path].index].append((tx.id, phone.index,
                                                       rng.randrange(len(tx.people))))

        # 3. The pharmacists at each counter dispense what that counter opened (a random 2 000
        #    of them), through its API, the three counters at once.
        errors: list[str] = []

        def dispense(c: Counter, part: int) -> None:
            for tx_id, _k, person in todo[c.index][part::2]:
                if pharmacy.phones[_k].family.beneficiaries:
                    status, body = c.call("POST", f"/v1/transactions/{tx_id}/beneficiary",
                                          {"person": person})
                    if status != 200:
                        errors.append(f"choose {status} {body}")
                        return
                status, body = c.call("POST", f"/v1/transactions/{tx_id}/dispensation",
                                      dispensation(person))
                if status != 201:
                    errors.append(f"dispense {status} {body}")
                    return

        t0 = time.monotonic()
        threads = [threading.Thread(target=dispense, args=(c.clone(), part))
                   for c in pharmacy.counters for part in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dispensed = time.monotonic() - t0
        assert not errors, errors[:3]

        # Every care sheet is the chosen person's, of the presenting family; numbered 1..n.
        for tx_id, k, person in (x for xs in todo.values() for x in xs):
            fam = pharmacy.phones[k].family
            who = by_id[tx_id].people[person]  # checked above to be of this family
            sheet = biller.sheet(tx_id)
            assert sheet is not None, tx_id
            assert sheet.insured_nir == fam.insured.nir
            assert (sheet.insured_nir, sheet.birth_date, sheet.birth_rank,
                    sheet.beneficiary_rank) == (who.ref.insured_nir, who.ref.birth_date,
                                                who.ref.birth_rank, who.rank)
        invoices = biller._call(lambda j: [r[0] for r in j.db.execute(
            "SELECT invoice_no FROM sheet WHERE finess=? ORDER BY invoice_no", (FINESS,))])
        assert invoices == list(range(1, len(to_dispense) + 1))
    finally:
        store.close()
        biller.close()
    print(f"{sent} presentations at {COUNTERS} counters x {BOARDS} boards: verified in "
          f"{verified:.1f} s; {len(to_dispense)} dispensed in {dispensed:.1f} s")
