"""Conformance: Adafruit's PN532 driver, unchanged, against the simulator.

adafruit-circuitpython-pn532 is a PN532 driver written by someone else; if it
works against the simulator over a pseudo-terminal, the simulator speaks the
protocol, not just our reading of it. The library reads response_length + 9
bytes, so each call waits for the serial timeout: few calls, short timeout.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import serial

from comptoir_tools.simulators.phone import COMPTOIR_AID, Phone, verify_default_presentation
from comptoir_tools.simulators.pn532_sim import PN532Sim

adafruit_uart = pytest.importorskip("adafruit_pn532.uart")


@pytest.fixture
def sim() -> Iterator[PN532Sim]:
    with PN532Sim(seed=3) as s:
        yield s


def _adafruit(sim: PN532Sim) -> tuple[object, serial.Serial]:
    port = serial.Serial(sim.port, 115200, timeout=0.05)
    return adafruit_uart.PN532_UART(port), port


def test_adafruit_init_version_poll_and_apdus(sim: PN532Sim) -> None:
    pn, port = _adafruit(sim)  # init: wake-up, SAMConfiguration, GetFirmwareVersion
    try:
        assert pn.firmware_version == (0x32, 0x01, 0x06, 0x07)
        assert sim.stats.commands[0x14] >= 1 and not sim.lowvbat

        phone = Phone()
        uid = sim.place(phone)
        assert pn.read_passive_target(timeout=0.5) == uid

        select = bytes([0x00, 0xA4, 0x04, 0x00, len(COMPTOIR_AID)]) + COMPTOIR_AID + b"\x00"
        answer = pn.call_function(0x40, response_length=8, params=b"\x01" + select)
        assert answer == b"\x00\x01\x90\x00"  # status 00, version 01, SW 90 00
        challenge = bytes(range(16))
        present = b"\x80\x50\x00\x00\x10" + challenge + b"\xf0"
        got = pn.call_function(0x40, response_length=250, params=b"\x01" + present)
        assert got[0] == 0x00 and got[-2:] == b"\x61\x00"  # status 00, more data waiting
        assert phone.challenges == [challenge]
        assert got[1:-2] == phone.presentations[0][:240]
        assert verify_default_presentation(phone.presentations[0], challenge)

        assert pn.call_function(0x52, response_length=1, params=b"\x00") == b"\x00"
        assert pn.call_function(0x40, response_length=4, params=b"\x01" + select) == b"\x27"
    finally:
        port.close()


def test_adafruit_poll_without_phone_times_out_and_next_command_works(sim: PN532Sim) -> None:
    pn, port = _adafruit(sim)
    try:
        # Adafruit leaves MaxRetries at FF: the chip polls until the next command.
        assert pn.read_passive_target(timeout=0.2) is None
        assert pn.firmware_version[0] == 0x32
        assert sim.stats.aborted >= 1
    finally:
        port.close()
