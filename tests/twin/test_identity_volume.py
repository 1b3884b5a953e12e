"""The worst bug this system can have is one person shown or billed as another.
Four boards on the real link (through the wire model at 921 600 baud) send
thousands of interleaved QR presentations, as camera boards with an on-board
decoder do (QR_TEXT), from many families, several presentations of each family
credential; the real daemon verifies them, opens transactions, the pharmacist
picks a person, care sheets are recorded. Every verdict, every transaction and
every care sheet must belong to the family whose phone made that presentation.

The boards here are the firmware's own link code (BoardLink) driven from
CPython: the volume is about the daemon's bookkeeping, not the reader."""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

from comptoir.billing import LineInput, TiersPayant
from comptoir.nfc_service import Presentation
from comptoir.tokens.model import Verified
from comptoir.transactions import DispenseRequest, State
from comptoir_link import frames as F
from comptoir_tools.simulators.insurer import SimulatedInsurer
from comptoir_tools.simulators.protocol_board import QrCounters

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from billing_fixtures import CIP, FINESS, PHARMACIST, PRESCRIBER

PRESENTATIONS = int(os.environ.get("COMPTOIR_IDENTITY_PRESENTATIONS", "10000"))
BOARDS = 4
FAMILIES = 24


def test_interleaved_presentations_are_each_bound_to_their_own_person(tmp_path: Path) -> None:
    rng = random.Random(2026)
    insurer = SimulatedInsurer(tmp_path / "insurer", seed=9)
    families = [insurer.family(3000 + k, beneficiaries=k % 4) for k in range(FAMILIES)]
    wallets = [insurer.activate(f) for f in families]
    # Each phone is at one counter; each counter sees several families, in turn.
    per_board: list[list[tuple[int, str]]] = [[] for _ in range(BOARDS)]
    for _ in range(PRESENTATIONS):
        k = rng.randrange(FAMILIES)
        per_board[k % BOARDS].append((k, wallets[k].present_qr()))

    seen: list[Presentation] = []
    with QrCounters(tmp_path, insurer, [[t for _, t in sent] for sent in per_board]) as c:
        c.daemon.subscribe(lambda ev: seen.append(ev) if isinstance(ev, Presentation) else None)
        elapsed = c.run(620)
        time.sleep(0.5)
        boards, wires, store = c.boards, c.wires, c.store
        # 1. Every verdict reached its board, for its own presentation.
        for b, sent in zip(boards, per_board, strict=True):
            assert len(b.verdicts) == len(sent)
            assert set(b.verdicts.values()) <= {F.V_ACCEPTED, F.V_CHOOSE_BENEFICIARY}
        # 2. Every presentation verified as the family whose phone made it.
        by_port = {str(w.path_b): i for i, w in enumerate(wires)}
        family_of_presentation: dict[str, int] = {}
        for ev in seen:
            assert isinstance(ev.result, Verified), ev.result
            k, _ = per_board[by_port[ev.port]][ev.object_id & 0x7FFF]
            assert ev.result.credential.insured.nir == families[k].insured.nir
            family_of_presentation[ev.result.presentation_id.hex()] = k
        assert len(seen) == PRESENTATIONS
        # 3. Every transaction holds exactly that family; the person the pharmacist
        #    picks is the one on the care sheet.
        ids = store.ids()
        assert len(ids) == PRESENTATIONS
        billed = defaultdict(int)
        for tx_id in ids:
            tx = store.get(tx_id)
            k = family_of_presentation[tx.presentation_id]
            fam = families[k]
            assert tx.people[0].ref.insured_nir == fam.insured.nir
            assert [p.given_names for p in tx.people[1:]] == [
                b.given_names for b in fam.beneficiaries]
            if tx.state is State.AWAITING_BENEFICIARY:
                tx = store.choose(tx_id, rng.randrange(len(tx.people)))
            person = tx.chosen_person
            assert person is not None
            day = dt.date.today()
            tx = store.dispense(tx_id, DispenseRequest(
                person=person.index, finess=FINESS, pharmacist_rpps=PHARMACIST,
                prescriber_rpps=PRESCRIBER, prescribed_on=day - dt.timedelta(days=2),
                dispensed_on=day, lines=(LineInput(CIP, 1, 1000, 1000, 65),),
                tiers_payant=TiersPayant(amo=True)))
            assert tx.state is State.DISPENSED and tx.sheet is not None
            sheet = store.biller.sheet(tx_id)
            assert sheet is not None
            # The care sheet's patient is the person chosen, and of this family.
            assert (sheet.insured_nir, sheet.birth_date, sheet.birth_rank) == (
                person.ref.insured_nir, person.ref.birth_date, person.ref.birth_rank)
            assert sheet.insured_nir == fam.insured.nir
            billed[k] += 1
        assert sum(billed.values()) == PRESENTATIONS
        print(f"{PRESENTATIONS} presentations on {BOARDS} boards verified in {elapsed:.1f} s")
