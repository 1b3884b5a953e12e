"""A board unplugged and plugged back 100 times while phones keep tapping: the
daemon recovers each time, and every tap is verified exactly once (a tap made
while the board is unplugged is simply read when the link is back)."""

from __future__ import annotations

import os
import queue
import random
import time

from comptoir.events import BoardUp, PortLost
from comptoir.nfc_service import Presentation
from comptoir.tokens.model import Verified
from comptoir_tools.simulators.phone import Phone

CYCLES = int(os.environ.get("COMPTOIR_TWIN_REPLUGS", "100"))


def test_unplug_replug_during_taps(twin_factory):
    tw, log = twin_factory(1, nfc=True, heartbeat_ms=200)
    board = tw.boards[0]
    q: queue.Queue[Presentation] = queue.Queue()
    tw.daemon.subscribe(lambda ev: q.put(ev) if isinstance(ev, Presentation) else None)
    wallets = [tw.insurer.activate(tw.insurer.family(900 + k, beneficiaries=k % 2))
               for k in range(4)]
    rng = random.Random(5)
    taps, seen = [], set()
    for cycle in range(CYCLES):
        mark = log.mark()
        wallet = wallets[cycle % len(wallets)]
        phone = Phone(wallet.present_nfc)
        board.pn532.place(phone)
        # Pull the USB cable at a random moment around the tap.
        time.sleep(rng.uniform(0.0, 0.3))
        board.wire.unplug()
        log.expect(lambda e: isinstance(e, PortLost), 5, after=mark)
        time.sleep(rng.uniform(0.05, 0.3))
        board.wire.replug()
        log.expect(lambda e: isinstance(e, BoardUp), 15, after=mark)
        ev = q.get(timeout=15)  # read before the unplug, or once the link is back
        assert isinstance(ev.result, Verified), ev.result
        assert ev.result.presentation_id not in seen
        seen.add(ev.result.presentation_id)
        taps.append((wallet, ev))
        board.pn532.remove()
        time.sleep(0.35)
    time.sleep(1.0)
    assert q.empty(), "a tap was delivered twice"
    assert len(taps) == CYCLES
    assert board.firmware.exits == []
