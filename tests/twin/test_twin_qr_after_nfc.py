"""Issue 15, `make run`: QR showings on the camera board got no verdict after that board's
first NFC tap. Twenty alternating NFC taps and QR showings on one camera board with a PN532,
the real firmware on MicroPython at 921 600 baud: each gets its verdict."""

from __future__ import annotations

import queue
import time

from test_twin_qr import Screen

from comptoir.nfc_service import Presentation
from comptoir.tokens.model import Verified
from comptoir_tools.simulators.phone import Phone


def test_twenty_alternating_taps_and_showings_on_one_camera_board(twin_factory):
    tw, _log = twin_factory(1, kinds=["camera+nfc"], camera_baud=921600, qr_hold=1.0)
    board = tw.boards[0]
    q: queue.Queue[Presentation] = queue.Queue()
    tw.daemon.subscribe(lambda ev: q.put(ev) if isinstance(ev, Presentation) else None)
    got: list[str] = []
    for i in range(10):
        fam = tw.insurer.family(40 + i, beneficiaries=0)
        wallet = tw.insurer.activate(fam)
        board.pn532.place(Phone(wallet.present_nfc))
        try:
            ev = q.get(timeout=20)
        except queue.Empty:
            raise AssertionError(f"tap {i}: no verdict after {got}; firmware: "
                                 f"{list(board.firmware.lines)[-15:]}") from None
        finally:
            board.pn532.remove()
        assert ev.channel == "nfc" and isinstance(ev.result, Verified), (i, ev.result)
        got.append("nfc")
        time.sleep(0.3)
        with Screen(board, wallet.present_qr(), seed=1, pose=0):  # as `comptoir twin` films
            try:
                ev = q.get(timeout=20)
            except queue.Empty:
                raise AssertionError(f"showing {i}: no verdict after {got}; firmware: "
                                     f"{list(board.firmware.lines)[-15:]}") from None
        assert ev.channel == "qr" and isinstance(ev.result, Verified), (i, ev.result)
        assert ev.result.credential.insured.nir == fam.insured.nir
        got.append("qr")
        time.sleep(0.3)
    assert got == ["nfc", "qr"] * 10
    assert board.firmware.exits == []
