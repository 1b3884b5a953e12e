"""Conformance: nfcpy 1.0.4, unchanged and used as an application uses it, reads the
simulated phone through the simulated PN532 (issue 14).

nfcpy is the second independent PN532 driver (after Adafruit's,
test_pn532_sim_conformance.py). It talks to the chip differently from our firmware:
no 0x55 wake-up, GetFirmwareVersion before SAMConfiguration, 921600 baud, the field
switched off before every poll, CIU registers read and written, and ISO-DEP run in
software over InCommunicateThru (RATS, I-blocks, R(NAK) presence checks, S(WTX)).
The presentation it reads is verified by the host's verifier.

nfcpy is a dev dependency only (pyproject dev extras); neither the host nor the
firmware imports it.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import nfc
import nfc.clf.pn532
import nfc.clf.transport
import nfc.tag
import nfc.tag.tt4
import pytest

from comptoir.tokens.model import Verified
from comptoir_tools.simulators.phone import COMPTOIR_AID, Phone
from comptoir_tools.simulators.pn532_sim import Fault, PN532Sim

HOST_TESTS = Path(__file__).resolve().parents[1] / "host"
if str(HOST_TESTS) not in sys.path:
    sys.path.insert(0, str(HOST_TESTS))

from tokens_fixtures import BOARD, NOW, World  # noqa: E402

_names = itertools.count()


class Rig:
    """A simulated PN532 reachable the way nfcpy opens a serial reader."""

    def __init__(self, seed: int) -> None:
        self.root = os.geteuid() == 0
        self.name = f"pn532sim-{os.getpid()}-{next(_names)}"
        link = f"/dev/{self.name}" if self.root else None
        self.sim = PN532Sim(seed=seed, link=link).start()
        self.clf = nfc.ContactlessFrontend()

    def open(self) -> None:
        if self.root:  # nfcpy's normal open path: a tty under /dev, driver named
            if not self.clf.open(f"tty:{self.name}:pn532"):
                raise OSError("nfcpy found no reader")
        else:  # what device.connect does for that path, without a /dev entry
            device = nfc.clf.pn532.init(nfc.clf.transport.TTY(self.sim.port))
            device._path = self.sim.port
            self.clf.device = device

    def close(self) -> None:
        self.clf.close()
        self.sim.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig(seed=21)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path / "tokens")
    yield w
    w.state.close()


def wallet_phone(world: World) -> Phone:
    wallet = world.wallet()
    return Phone(lambda challenge: wallet.present_nfc(challenge, now=NOW))


def connect(clf: nfc.ContactlessFrontend) -> nfc.tag.tt4.Type4Tag:
    tag = clf.connect(rdwr={"targets": ["106A"], "on-connect": lambda tag: False,
                            "iterations": 3, "interval": 0.05})
    assert isinstance(tag, nfc.tag.tt4.Type4ATag), tag
    return tag


def read_presentation(tag: nfc.tag.tt4.Type4Tag, challenge: bytes) -> bytes:
    """The Comptoir exchange (docs/nfc.md §1) through nfcpy's send_apdu."""
    version = tag.send_apdu(0x00, 0xA4, 0x04, 0x00, COMPTOIR_AID, mrl=256)
    assert version == b"\x01"
    got = bytes(tag.send_apdu(0x80, 0x50, 0x00, 0x00, challenge, mrl=240, check_status=False))
    pres = got[:-2]
    while got[-2] == 0x61:
        le = got[-1] if 0 < got[-1] <= 240 else 240
        got = bytes(tag.send_apdu(0x00, 0xC0, 0x00, 0x00, mrl=le, check_status=False))
        pres += got[:-2]
    assert got[-2:] == b"\x90\x00", got[-2:].hex()
    return pres


def test_nfcpy_reads_the_phone_and_the_host_verifies_it(rig: Rig, world: World) -> None:
    rig.open()
    assert str(rig.clf.device).startswith("PN532v1.6")
    assert not rig.sim.lowvbat and rig.sim.timing.baud in (115200, 921600)
    phone = wallet_phone(world)
    rig.sim.place(phone)
    tag = connect(rig.clf)
    assert tag.identifier == rig.sim.uid
    assert tag._dep.fwt == pytest.approx(0.0387, abs=0.0002)  # FWI 7 from the ATS
    challenge = world.challenges.issue(BOARD, now=NOW)
    pres = read_presentation(tag, challenge)
    assert len(pres) > 240  # several pages
    assert phone.challenges == [challenge] and phone.presentations == [pres]
    result = world.nfc(pres)
    assert isinstance(result, Verified), result
    # The PRESENT took longer than the phone's FWT: it asked for more time and
    # nfcpy answered the S(WTX).
    outs = b"".join(data for _, way, data in rig.sim.log if way == "out")
    assert b"\xd5\x43\x00\xf2\x01" in outs
    assert tag.is_present  # nfcpy's R(NAK) presence check
    rig.sim.remove()
    assert not tag.is_present


def test_close_then_reopen_after_a_power_cycle(rig: Rig, world: World) -> None:
    rig.open()
    rig.clf.close()  # nfcpy's close: ACK, back to 115200, PowerDown B0 00
    assert rig.sim.asleep and rig.sim.timing.baud == 115200
    # Like the real chips in nfcpy#186 (and #45, #38): nfcpy's 0x00 preamble does not
    # wake a powered-down HSU PN532, so it cannot reopen until a power cycle.
    with pytest.raises(OSError):
        rig.open()
    rig.sim.power_on_reset()
    rig.open()
    phone = wallet_phone(world)
    rig.sim.place(phone)
    # This time as sense + activate, the lower half of connect().
    target = rig.clf.sense(nfc.clf.RemoteTarget("106A"), iterations=3, interval=0.05)
    assert target is not None and target.sel_res == b"\x20"
    tag = nfc.tag.activate(rig.clf, target)
    assert isinstance(tag, nfc.tag.tt4.Type4ATag)
    challenge = world.challenges.issue(BOARD, now=NOW)
    assert isinstance(world.nfc(read_presentation(tag, challenge)), Verified)


def test_chaining_both_ways_through_nfcpy(rig: Rig) -> None:
    class Echo(Phone):
        def process_apdu(self, apdu: bytes) -> bytes:
            self.apdus += 1
            return bytes(apdu[5 : 5 + apdu[4]]) * 2 + b"\x90\x00"

    rig.open()
    rig.sim.place(Echo())
    tag = connect(rig.clf)
    data = bytes((5 * i + 1) & 0xFF for i in range(255))
    # 260-byte APDU > 253 (FSC 256 - PCB - CRC): nfcpy chains it; 510 bytes come back
    # in three chained blocks.
    assert tag.send_apdu(0x00, 0xDA, 0x00, 0x00, data) == data * 2
    outs = b"".join(d for _, way, d in rig.sim.log if way == "out")
    assert b"\xd5\x43\x00\xa2" in outs or b"\xd5\x43\x00\xa3" in outs  # R(ACK) to the chain
    assert b"\xd5\x43\x00\x12" in outs or b"\xd5\x43\x00\x13" in outs  # chained I-block


def test_rf_error_in_software_iso_dep_is_recovered_by_nfcpy(rig: Rig, world: World) -> None:
    rig.open()
    phone = wallet_phone(world)
    rig.sim.place(phone)
    tag = connect(rig.clf)
    # The 3rd InCommunicateThru of the exchange (the PRESENT) is lost to a CRC error:
    # nfcpy sends R(NAK), the phone answers R(ACK) (it never got the block), nfcpy
    # sends the block again (ISO/IEC 14443-4 rules 6 and 12).
    rig.sim.inject(Fault.RF_ERROR, command=0x42, code=0x02, skip=1)
    challenge = world.challenges.issue(BOARD, now=NOW)
    assert isinstance(world.nfc(read_presentation(tag, challenge)), Verified)
    assert rig.sim.stats.faults_fired == 1
    assert len(phone.presentations) == 1


def test_phone_leaving_mid_exchange_is_an_nfcpy_error(rig: Rig) -> None:
    rig.open()
    rig.sim.place(Phone())
    tag = connect(rig.clf)
    rig.sim.inject(Fault.PHONE_LEAVES, command=0x42)
    with pytest.raises(nfc.tag.tt4.Type4TagCommandError):
        tag.send_apdu(0x00, 0xA4, 0x04, 0x00, COMPTOIR_AID, mrl=256)
    assert rig.sim.phone is None


def test_phone_going_away_mid_chain_is_an_nfcpy_error(rig: Rig) -> None:
    class Big(Phone):
        def process_apdu(self, apdu: bytes) -> bytes:
            return bytes(range(256)) * 3 + b"\x90\x00"

    rig.open()
    rig.sim.place(Big(leave_after_blocks=1))
    tag = connect(rig.clf)
    with pytest.raises(nfc.tag.tt4.Type4TagCommandError):
        tag.send_apdu(0x00, 0xCA, 0x00, 0x00, mrl=256)
    assert rig.sim.phone is None
