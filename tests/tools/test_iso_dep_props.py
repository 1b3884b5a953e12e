"""Property tests of the simulated phone's ISO/IEC 14443-4 layer (Phone.rf_receive): it
parses frames from any reader, so any byte string must get silence or a well-formed
block, and a conforming reader must get every APDU answer whole, whatever FSD it
announces, however the blocks are chained and whichever answers it loses."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from comptoir_tools.simulators.phone import FSD_TABLE, Phone


class Echo(Phone):
    """Answers data || data reversed, 90 00: long answers, chained at small FSD."""

    def process_apdu(self, apdu: bytes) -> bytes:
        self.apdus += 1
        return bytes(apdu[4:]) + bytes(apdu[4:])[::-1] + b"\x90\x00"

    def processing_time(self, apdu: bytes) -> float:
        return 0.001 if len(apdu) % 3 else 0.060  # some slower than FWT: WTX


def well_formed(frame: bytes) -> bool:
    pcb = frame[0]
    return (pcb & 0xE2 == 0x02) or (pcb & 0xE6 == 0xA2) or (pcb & 0xC7 == 0xC2)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=300), max_size=12), st.booleans())
def test_any_frames_get_silence_or_a_well_formed_block(frames: list[bytes], rats: bool) -> None:
    phone = Echo()
    phone.select_l3()
    t = 0.0
    if rats:
        ans = phone.rf_receive(b"\xe0\x80", t)
        assert ans is not None and ans.frame == phone.ats
    for f in frames:
        t += 0.1
        ans = phone.rf_receive(f, t)
        if ans is None:
            continue
        assert ans.delay_s >= 0
        if phone.iso_state == "ready":
            raise AssertionError("answered before RATS")
        if f[:1] == b"\xe0" and len(f) == 2 and not rats and ans.frame == phone.ats:
            rats = True
            continue
        assert well_formed(ans.frame), (f.hex(), ans.frame.hex())
        assert len(ans.frame) <= phone.fsd - 2  # the answer fits FSD with its CRC_A


class Reader:
    """A minimal ISO-DEP initiator after ISO/IEC 14443-4 §7.5.4 (PCD rules), written
    for this test; `lose` says which answers the air loses (the reader then sends
    R(NAK), rule 4)."""

    def __init__(self, phone: Phone, fsc: int, lose: list[bool]) -> None:
        self.phone, self.fsc, self.lose = phone, fsc, iter(lose)
        self.pni = 0
        self.t = 0.0

    def send(self, frame: bytes) -> bytes:
        for attempt in range(8):
            self.t += 0.2
            ans = self.phone.rf_receive(frame, self.t)
            assert ans is not None, frame.hex()
            if attempt < 3 and next(self.lose, False):  # at most 3 losses in a row
                frame = bytes([0xB2 | self.pni])  # lost: R(NAK)
                continue
            while ans.frame[0] & 0xFE == 0xF2:  # S(WTX): answer it
                self.t += ans.delay_s
                ans = self.phone.rf_receive(ans.frame, self.t)
                assert ans is not None
            return ans.frame
        raise AssertionError("too many losses")

    def exchange(self, apdu: bytes) -> bytes:
        room = self.fsc - 3
        parts = [apdu[i : i + room] for i in range(0, len(apdu), room)] or [b""]
        for k, part in enumerate(parts):
            more = k < len(parts) - 1
            block = bytes([(0x12 if more else 0x02) | self.pni]) + part
            ans = self.send(block)
            while ans[0] & 0xF6 == 0xA2 and (ans[0] & 1) != self.pni:  # rule 6: resend
                ans = self.send(block)
            assert ans[0] & 1 == self.pni
            if more:
                assert ans[0] & 0xF6 == 0xA2  # R(ACK) to a chained block
            self.pni ^= 1
        out = ans[1:]
        while ans[0] & 0x10:  # the phone chains: R(ACK) for the next block
            ans = self.send(bytes([0xA2 | self.pni]))
            assert ans[0] & 0xE2 == 0x02 and ans[0] & 1 == self.pni
            out += ans[1:]
            self.pni ^= 1
        return out


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 8),
    st.lists(st.binary(max_size=300), min_size=1, max_size=4),
    st.lists(st.booleans(), max_size=30),
)
def test_a_conforming_reader_gets_every_answer_whole(
    fsdi: int, datas: list[bytes], lose: list[bool]
) -> None:
    phone = Echo()
    phone.select_l3()
    ans = phone.rf_receive(bytes([0xE0, fsdi << 4]), 0.0)
    assert ans is not None and phone.fsd == FSD_TABLE[fsdi]
    reader = Reader(phone, fsc=256, lose=lose)
    for data in datas:
        apdu = b"\x00\xda\x00\x00" + data
        assert reader.exchange(apdu) == data + data[::-1] + b"\x90\x00"
    assert phone.apdus == len(datas)
