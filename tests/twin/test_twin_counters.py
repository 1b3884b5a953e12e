"""Two counters of one pharmacy (issue 17): two twins (each its daemon and its camera board
running the real firmware) whose verifiers share their replay state on one PostgreSQL server.
A QR code accepted at counter 1, then photographed and shown at counter 2: refused there as
replayed, the refusal on counter 2's board."""

from __future__ import annotations

import queue
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from pg_fixtures import pg_server, pg_url  # noqa: F401 (fixtures)
from test_twin_qr import Screen

from comptoir.nfc_service import Presentation
from comptoir.tokens.model import Refused, Verified
from comptoir.tokens.reasons import Reason
from comptoir_tools.simulators.insurer import SimulatedInsurer


def test_a_screenshot_accepted_at_counter_1_is_refused_at_counter_2(
        twin_factory, pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    insurer = SimulatedInsurer(tmp_path / "insurer", seed=1)  # one PKI, one pepper
    counters = []
    try:
        counters = [twin_factory(1, camera=True, baud=921600, qr_hold=1.0, insurer=insurer,
                                 storage_url=pg_url)[0] for _ in range(2)]
        # Each counter its own verifier and state object: only the database is shared.
        states = [tw._shared_state for tw in counters]
        assert states[0] is not states[1] and insurer.state not in states
        seen: list[queue.Queue[Presentation]] = []
        for tw in counters:
            q: queue.Queue[Presentation] = queue.Queue()
            tw.daemon.subscribe(lambda ev, q=q: q.put(ev) if isinstance(ev, Presentation)
                                else None)
            seen.append(q)
        fam = insurer.family(22, beneficiaries=0)
        text = insurer.activate(fam).present_qr()
        one, two = (tw.boards[0] for tw in counters)
        with Screen(one, text, seed=3, pose=0):
            ev = seen[0].get(timeout=30)
        assert isinstance(ev.result, Verified), ev.result
        assert ev.result.credential.insured.nir == fam.insured.nir

        def refusals() -> int:
            return sum(1 for line in list(two.firmware.lines) if line == "OUT led_error 1")

        before = refusals()
        with Screen(two, text, seed=4, pose=7):  # a photo of the same QR, at counter 2
            ev = seen[1].get(timeout=30)
        assert isinstance(ev.result, Refused) and ev.result.reason is Reason.REPLAYED
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and refusals() == before:
            time.sleep(0.05)
        assert refusals() > before  # the refusal on counter 2's board
    finally:
        for tw in counters:
            tw.stop()
        insurer.close()
