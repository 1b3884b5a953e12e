"""protocol.md §9 / nfc.md §1 (issue 19): the firmware reads at most 1024 bytes from a phone
(nfc_task.MAX_PRESENTATION); a longer presentation ends the tap with TAP_ERROR 6, the reason
the docs give (`answer over 1024 bytes`). Firmware NFC code (run by CPython) against the PN532
simulator over a pseudo-terminal."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))

import nfc_task  # noqa: E402
from nfc_reader import NfcReader  # noqa: E402
from pn532 import errors  # noqa: E402
from pn532.chip import PN532  # noqa: E402
from pn532.transport import UartTransport  # noqa: E402

from comptoir_tools.simulators.phone import Phone, default_presentation  # noqa: E402
from comptoir_tools.simulators.pn532_sim import PN532Sim, PtyUart  # noqa: E402


@pytest.mark.parametrize("size", [1024, 1025, 3000])
def test_presentations_over_1024_bytes_end_the_tap_with_tap_error_6(size):
    sim = PN532Sim(seed=9).start()
    uart = PtyUart(sim.port)
    try:
        reader = NfcReader(PN532(UartTransport(uart)), max_presentation=nfc_task.MAX_PRESENTATION)
        assert reader.poll_once(os.urandom(16)) is None  # empty field
        sim.place(Phone(lambda c: default_presentation(c, size=size)))
        try:
            got = reader.poll_once(os.urandom(16))
        except errors.ResponseTooLong as e:
            assert size > 1024
            assert "answer over 1024 bytes" in str(e)
            assert nfc_task.error_code(e) == nfc_task.TE_PROTOCOL == 6
        else:
            assert size <= 1024 and got is not None and len(got) == size
    finally:
        uart.close()
        sim.close()
