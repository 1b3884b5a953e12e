"""Hardware only: a person at the bench taps the real board's reader, following
prompts. The board's whole NFC path runs on the real PN532 (polling, the phone's
activation, SELECT of the Comptoir application, the challenge, paging) and the
board must report a named result for every tap: a presentation the host verifies
or refuses with its reason (a phone running a Comptoir test wallet), or a tap
error with its code (2 = an Android phone without the application, 4 = a card).
Run with `pytest -s` so the prompts show (make hil does)."""

from __future__ import annotations

import queue
import time

import pytest

from comptoir.nfc_service import Presentation, TapFailed

PROMPT_S = 60


def _wait_tap(target, prompt: str):
    q: queue.Queue = queue.Queue()
    target.daemon.subscribe(
        lambda ev: q.put(ev) if isinstance(ev, Presentation | TapFailed) else None)
    print(f"\n>>> {prompt} (within {PROMPT_S} s)", flush=True)
    try:
        return q.get(timeout=PROMPT_S)
    except queue.Empty:
        pytest.fail(f"no tap reported within {PROMPT_S} s: did the person tap? Is the PN532 "
                    "wired as the board file says (docs/boards.md)?")


@pytest.mark.hil
def test_a_person_taps_a_phone_and_the_board_reports_a_named_result(target):
    if "nfc" not in target.board.definition.get("features", ()):
        pytest.skip(f"{target.board.name} has no NFC reader")
    target.log.expect(lambda e: type(e).__name__ == "BoardUp", 30)
    ev = _wait_tap(target, "Tap an Android phone (NFC on, screen unlocked) on the reader")
    if isinstance(ev, TapFailed):
        assert 1 <= ev.code <= 6 and ev.text, ev
    else:
        assert ev.channel == "nfc"
        assert ev.result is not None
    time.sleep(1)
    # Taken away and tapped again: read again, as a new tap (never as the same one).
    ev2 = _wait_tap(target, "Take the phone away, then tap it again")
    assert ev2 is not ev
