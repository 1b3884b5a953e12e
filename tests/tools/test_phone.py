"""The simulated phone (Comptoir HCE app): its APDUs, byte for byte."""

from __future__ import annotations

import sys
from pathlib import Path

from comptoir_tools.simulators import phone as P

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))

SELECT = bytes.fromhex("00A404000A") + P.COMPTOIR_AID + b"\x00"


def present(challenge: bytes, le: int = 0xF0) -> bytes:
    return bytes([0x80, 0x50, 0x00, 0x00, 0x10]) + challenge + bytes([le])


def test_constants_match_the_firmware() -> None:
    from pn532 import apdu

    assert apdu.COMPTOIR_AID == P.COMPTOIR_AID
    assert (apdu.CLA_COMPTOIR, apdu.INS_PRESENT) == (P.CLA_COMPTOIR, P.INS_PRESENT)
    assert apdu.CHALLENGE_LEN == P.CHALLENGE_LEN and apdu.APP_VERSION == P.APP_VERSION
    assert apdu.CHUNK == P.CHUNK_MAX


def test_select() -> None:
    ph = P.Phone()
    assert ph.process_apdu(SELECT) == b"\x01\x90\x00"
    other = bytes.fromhex("00A4040007D2760000850101 00".replace(" ", ""))
    assert ph.process_apdu(other) == b"\x6a\x82"
    assert ph.process_apdu(bytes.fromhex("00A4000C023F00")) == b"\x6a\x86"


def test_nothing_before_select() -> None:
    ph = P.Phone()
    assert ph.process_apdu(present(bytes(16))) == b"\x6a\x82"
    assert ph.challenges == []


def test_presentation_pages() -> None:
    ph = P.Phone()
    ph.process_apdu(SELECT)
    ch = bytes(range(16))
    r = ph.process_apdu(present(ch))
    assert len(r) == 242 and r[-2:] == b"\x61\x00"  # 2760 left: 00 = 256 or more
    got = r[:-2]
    while True:
        r = ph.process_apdu(bytes.fromhex("00C00000F0"))
        got += r[:-2]
        if r[-2:] == b"\x90\x00":
            break
        assert r[-2] == 0x61
        left = 3000 - len(got)
        assert r[-1] == (left if left < 256 else 0)
    assert got == ph.presentations[0] and len(got) == 3000
    assert P.verify_default_presentation(got, ch)
    assert not P.verify_default_presentation(got, bytes(16))
    assert ph.process_apdu(bytes.fromhex("00C00000F0")) == b"\x69\x85"  # nothing pending


def test_le_smaller_than_chunk_is_honoured() -> None:
    ph = P.Phone(lambda c: bytes(100))
    ph.process_apdu(SELECT)
    r = ph.process_apdu(present(bytes(16), le=0x20))
    assert len(r) == 0x22 and r[-2:] == b"\x61\x44"


def test_errors() -> None:
    ph = P.Phone(locked=True)
    ph.process_apdu(SELECT)
    assert ph.process_apdu(present(bytes(16))) == b"\x69\x82"  # locked
    ph.locked = False
    assert ph.process_apdu(bytes([0x80, 0x50, 0, 0, 0x08]) + bytes(8)) == b"\x67\x00"
    assert ph.process_apdu(bytes([0x80, 0x50, 1, 0, 0x10]) + bytes(16)) == b"\x6a\x86"
    assert ph.process_apdu(bytes.fromhex("80CA0000")) == b"\x6d\x00"
    assert ph.process_apdu(bytes.fromhex("A0CA0000")) == b"\x6e\x00"
    assert ph.process_apdu(b"\x00") == b"\x67\x00"


def test_default_presentation_is_deterministic_and_bound() -> None:
    a = P.default_presentation(b"A" * 16)
    assert a == P.default_presentation(b"A" * 16)
    b = P.default_presentation(b"B" * 16)
    assert a[:-32] == b[:-32] and a[-32:] != b[-32:]
    assert len(P.default_presentation(b"A" * 16, size=500)) == 500
    assert not P.verify_default_presentation(a[:-1] + bytes([a[-1] ^ 1]), b"A" * 16)


def test_activation_resets_the_session() -> None:
    ph = P.Phone()
    ph.process_apdu(SELECT)
    ph.activate()
    assert ph.process_apdu(present(bytes(16))) == b"\x6a\x82"
    assert ph.activations == 1
    assert ph.processing_time(present(bytes(16))) == ph.present_time_s
    assert ph.processing_time(SELECT) == ph.apdu_time_s
