"""The event stream, byte for byte, on fixed inputs: a board up, a presentation with
beneficiaries, one without, a refused one, a failed tap, a choice, a dispensation, a
cancellation, a board down and lost. golden/event_stream.jsonl was written by the code before
the issue-16 split (a331f5c: EventFeed opened the transactions), so the records, their order
and their ids are what they were."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import secrets
from pathlib import Path

import pytest
from billing_fixtures import CIP, DAY, FINESS, PHARMACIST, PRESCRIBER, adult_family

from comptoir.billing import LineInput, TiersPayant
from comptoir.events import BoardDown, BoardInfo, BoardUp, PortLost
from comptoir.http.feed import EventFeed
from comptoir.nfc_service import Presentation, TapFailed
from comptoir.opener import TransactionOpener
from comptoir.tokens.model import Refused
from comptoir.tokens.reasons import Reason
from comptoir.transactions import DispenseRequest, JournalBiller, TransactionStore
from comptoir_tools.testkit.billing_synth import presentation

GOLDEN = Path(__file__).parent / "golden" / "event_stream.jsonl"
PORT = "/dev/comptoir-A"


def test_the_event_stream_is_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count = itertools.count(1)
    monkeypatch.setattr(secrets, "token_hex", lambda n=16: f"{next(count):0{2 * n}x}")
    biller = JournalBiller(tmp_path / "b.db")
    store = TransactionStore(tmp_path / "t.db", bytes(32), biller)
    feed = EventFeed()
    opener = TransactionOpener(store, feed)
    sub = feed.subscribe()
    try:
        feed.on_event(BoardUp(PORT, BoardInfo("a1b2", "reader-A", "0.1.0", ("nfc",), 512)))
        for i, n in enumerate((2, 0)):
            opener.on_event(Presentation(PORT, "a1b2", 0x8001 + i, "qr", presentation(
                adult_family(seed=11 + i, beneficiaries=n), 1 + i), 0.0))
        opener.on_event(Presentation(PORT, "a1b2", 5, "nfc", Refused(Reason.REPLAYED), 0.0))
        feed.on_event(TapFailed(PORT, 6, 3, "gone"))
        first, second = store.ids()
        feed.transaction_changed(store.choose(first, 1), "chosen")
        req = DispenseRequest(
            person=1, finess=FINESS, pharmacist_rpps=PHARMACIST, prescriber_rpps=PRESCRIBER,
            prescribed_on=DAY - dt.timedelta(days=3), dispensed_on=DAY,
            lines=(LineInput(CIP, 1, 1000, 1000, 65),), tiers_payant=TiersPayant(amo=True))
        feed.transaction_changed(store.dispense(first, req), "dispensed")
        feed.transaction_changed(store.cancel(second), "cancelled")
        feed.on_event(BoardDown(PORT, "timeout"))
        feed.on_event(PortLost(PORT, "unplugged"))
    finally:
        store.close()
        biller.close()
    lines = []
    while not sub.queue.empty():
        lines.append(json.dumps(sub.queue.get_nowait()) + "\n")
    assert "".join(lines) == GOLDEN.read_text()
