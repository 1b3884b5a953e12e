"""The QR path end to end: a simulated camera films a phone showing its QR code,
the firmware (camera board) forwards frames over the link at 921 600 baud, the
daemon decodes them with pyzbar, verifies, and the verdict reaches the board."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest

from comptoir.nfc_service import Presentation
from comptoir.tokens.model import Refused, Verified
from comptoir.tokens.reasons import Reason
from comptoir_tools.boards.definitions import list_boards, load
from comptoir_tools.simulators.camera_sim import CameraSim
from comptoir_tools.simulators.phone import Phone


class Screen:
    """A phone held in front of the board's camera, filmed at about 5 frames/s."""

    def __init__(self, board: Any, text: str, seed: int, pose: int) -> None:
        self.board, self.text = board, text
        self.sim = CameraSim(seed)
        self.pose = pose
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.board.camera.publish(self.sim.frame(self.text, level=1, pose=self.pose))
            time.sleep(0.2)

    def __enter__(self) -> Screen:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.board.camera.clear()  # the phone is taken away


def test_qr_shown_verified_once_verdict_on_board_and_screenshot_refused(twin_factory):
    tw, _log = twin_factory(1, camera=True, baud=921600, qr_hold=1.0)
    board = tw.boards[0]
    q: queue.Queue[Presentation] = queue.Queue()
    tw.daemon.subscribe(lambda ev: q.put(ev) if isinstance(ev, Presentation) else None)
    fam = tw.insurer.family(21, beneficiaries=0)
    text = tw.insurer.activate(fam).present_qr()

    with Screen(board, text, seed=3, pose=0):
        ev = q.get(timeout=30)
        assert ev.channel == "qr" and isinstance(ev.result, Verified), ev.result
        assert ev.result.credential.insured.nir == fam.insured.nir
        time.sleep(2.5)  # the phone stays in view: no second verification, no second verdict
    assert q.empty()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "OUT led_ok 1" not in board.firmware.lines:
        time.sleep(0.05)
    assert "OUT led_ok 1" in board.firmware.lines  # the verdict reached the board

    time.sleep(1.5)  # beyond the pipeline's hold: a new showing
    # A screenshot of the QR already used, shown again (another photo of it).
    def refusals() -> int:
        return sum(1 for line in list(board.firmware.lines) if line == "OUT led_error 1")

    before = refusals()
    with Screen(board, text, seed=4, pose=7):
        ev = q.get(timeout=30)
    assert isinstance(ev.result, Refused) and ev.result.reason is Reason.REPLAYED
    deadline = time.monotonic() + 5
    # The refusal on the board: the error LED (the twin board's display is its LEDs).
    while time.monotonic() < deadline and refusals() == before:
        time.sleep(0.05)
    assert refusals() > before
    assert board.firmware.exits == []


@pytest.mark.parametrize("name", list_boards())
def test_each_board_definition_taps_and_scans_in_the_twin(twin_factory, name):
    """Every board file runs in the twin: a tap on its PN532 (whatever its bus,
    simulated over HSU) and, on camera boards, a QR scan."""
    definition = load(name).definition
    tw, _log = twin_factory(1, kinds=[f"board:{name}"], camera_baud=921600, baud=115200)
    board = tw.boards[0]
    q: queue.Queue[Presentation] = queue.Queue()
    tw.daemon.subscribe(lambda ev: q.put(ev) if isinstance(ev, Presentation) else None)
    fam = tw.insurer.family(31, beneficiaries=1)
    wallet = tw.insurer.activate(fam)
    if "pn532" in definition:
        board.pn532.place(Phone(wallet.present_nfc))
        ev = q.get(timeout=20)
        board.pn532.remove()
        assert ev.channel == "nfc" and isinstance(ev.result, Verified), ev.result
        assert ev.result.credential.insured.nir == fam.insured.nir
        time.sleep(0.5)
    if "camera" in definition:
        with Screen(board, wallet.present_qr(), seed=5, pose=1):
            ev = q.get(timeout=30)
        assert ev.channel == "qr" and isinstance(ev.result, Verified), ev.result
    assert board.firmware.exits == []
