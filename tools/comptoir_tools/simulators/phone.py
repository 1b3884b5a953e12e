"""A simulated phone: the Comptoir wallet app in host card emulation (HCE).

It answers what an Android HCE service registered for the Comptoir AID answers
(APDUs in docs/nfc.md):

- ``00 A4 04 00 0A F0 'COMPTOIR' 01 00`` → ``01 90 00`` (protocol version 1);
  any other AID → ``6A 82`` (Android: no service for it).
- ``80 50 00 00 10 <challenge> Le`` → the first page of the presentation bound
  to the challenge, with ``61 xx`` while more is waiting, else ``90 00``.
- ``00 C0 00 00 Le`` (GET RESPONSE) → the next page.

Below the APDUs, :meth:`Phone.rf_receive` is what the phone's NFC controller does
at the ISO/IEC 14443-4 (ISO-DEP) level when a reader runs the protocol itself
(the PN532's InCommunicateThru, as nfcpy does): RATS → ATS, I-blocks with block
numbers, chaining both ways, R(ACK)/R(NAK), S(DESELECT), and S(WTX) when the
answer takes longer than the frame waiting time its ATS announces (FWI). A phone
can also go away in the middle of a chained answer (``leave_after_blocks``).

Until the token format exists, the presentation comes from
``make_presentation(challenge)``; the default is an opaque, deterministic blob
that ends with an HMAC of the challenge (:func:`verify_default_presentation`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

# Same values as firmware/pn532/apdu.py (a test checks they agree).
COMPTOIR_AID = b"\xf0COMPTOIR\x01"
APP_VERSION = 1
CLA_COMPTOIR = 0x80
INS_PRESENT = 0x50
CHALLENGE_LEN = 16
CHUNK_MAX = 240  # the most this app returns per response APDU

SW_OK = b"\x90\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_SECURITY = b"\x69\x82"  # app locked: the secret code or biometrics first
SW_CONDITIONS = b"\x69\x85"
SW_NOT_FOUND = b"\x6a\x82"
SW_WRONG_P1P2 = b"\x6a\x86"
SW_INS = b"\x6d\x00"
SW_CLA = b"\x6e\x00"

# ISO/IEC 14443-4 (the frame sizes and times an ATS announces).
FSD_TABLE = (16, 24, 32, 40, 48, 64, 96, 128, 256)  # FSDI/FSCI 0..8
FC = 13.56e6  # carrier frequency, Hz


def fwt_s(fwi: int) -> float:
    """Frame waiting time for FWI 0..14: (256 × 16 / fc) × 2^FWI (ISO/IEC 14443-4 §7.2)."""
    return 256 * 16 / FC * 2 ** fwi


def ats_with_fwi(ats: bytes, fwi: int) -> bytes:
    """The ATS with its TB(1) upper nibble (FWI) replaced; TB(1) must be present."""
    t0 = ats[1]
    if not t0 & 0x20:
        raise ValueError("this ATS has no TB(1)")
    i = 2 + (1 if t0 & 0x10 else 0)
    return ats[:i] + bytes([(fwi << 4) | (ats[i] & 0x0F)]) + ats[i + 1 :]


def ats_fwi(ats: bytes) -> int:
    """FWI from an ATS (TL T0 [TA] [TB] ...); 4 when TB(1) is absent (the default)."""
    if len(ats) < 2 or not ats[1] & 0x20:
        return 4
    i = 2 + (1 if ats[1] & 0x10 else 0)
    return ats[i] >> 4 if i < len(ats) else 4


@dataclass(frozen=True)
class RfAnswer:
    """What the phone sends back on the air, and when: ``delay_s`` after the end of
    the reader's frame (CRC_A not included: the PN532's CIU adds and checks it)."""

    frame: bytes
    delay_s: float


DEFAULT_KEY = b"comptoir-sim-phone-key"
DEFAULT_SIZE = 3000
_MAGIC = b"CPTB"


def default_presentation(
    challenge: bytes, *, size: int = DEFAULT_SIZE, key: bytes = DEFAULT_KEY, seed: bytes = b""
) -> bytes:
    """An opaque stand-in for a signed presentation: ``CPTB``, 2-byte length,
    deterministic filler (SHA-256 in counter mode over ``seed``), then
    HMAC-SHA256(key, filler || challenge). ``size`` is the total length."""
    body_len = size - len(_MAGIC) - 2 - 32
    if body_len < 0:
        raise ValueError("size too small for the default presentation")
    body = b"".join(
        hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(-(-body_len // 32))
    )[:body_len]
    tag = hmac.new(key, body + challenge, hashlib.sha256).digest()
    return _MAGIC + size.to_bytes(2, "big") + body + tag


def verify_default_presentation(blob: bytes, challenge: bytes, key: bytes = DEFAULT_KEY) -> bool:
    """True if ``blob`` is a default presentation bound to ``challenge``."""
    if len(blob) < 38 or blob[:4] != _MAGIC or int.from_bytes(blob[4:6], "big") != len(blob):
        return False
    body, tag = blob[6:-32], blob[-32:]
    return hmac.compare_digest(tag, hmac.new(key, body + challenge, hashlib.sha256).digest())


class Phone:
    """The phone's HCE service for the Comptoir AID.

    The PN532 simulator calls :meth:`activate` when it activates the phone
    (RATS), :meth:`process_apdu` for every C-APDU and :meth:`deactivate` on
    release; :meth:`processing_time` is the phone's turnaround for an APDU.
    """

    # What the PN532 sees of an Android phone in HCE (nfcpy log, pn532.md).
    sens_res = 0x0004
    sel_res = 0x20
    ats = b"\x05\x78\x80\x70\x02"

    def __init__(
        self,
        make_presentation: Callable[[bytes], bytes] | None = None,
        *,
        locked: bool = False,
        chunk: int = CHUNK_MAX,
        apdu_time_s: float = 0.008,
        present_time_s: float = 0.040,
        name: str = "phone",
        fwi: int | None = None,
        wtxm: int = 1,
        wtx_after_s: float | None = None,
        frame_delay_s: float = 0.0005,
        leave_after_blocks: int | None = None,
    ) -> None:
        self.make_presentation = make_presentation or default_presentation
        self.locked = locked
        self.chunk = chunk
        # Android HCE turnaround per APDU, and the signing of a presentation
        # (ECDSA P-256 in the phone's keystore). Assumed values, configurable.
        self.apdu_time_s = apdu_time_s
        self.present_time_s = present_time_s
        self.name = name
        # ISO-DEP. FWI 7 is what Android phones announce (ATS 05 78 80 70 02, nfcpy
        # log in shared/notes/pn532.md); another FWI rewrites the ATS's TB(1).
        if fwi is not None:
            self.ats = ats_with_fwi(self.ats, fwi)
        # S(WTX): the multiplier the phone asks for, and how long after the block it
        # sends the request. [assumed: WTXM 1, at half the FWT; ISO/IEC 14443-4 §7.3
        # only bounds it by FWT; Android leaves it to the NFC controller]
        self.wtxm = wtxm
        self.wtx_after_s = wtx_after_s
        # Turnaround of a block the controller answers itself (ATS, R-blocks, S-blocks)
        # [assumed: 0.5 ms, well under FWT].
        self.frame_delay_s = frame_delay_s
        # Goes away after sending this many blocks of a chained answer (None: stays).
        self.leave_after_blocks = leave_after_blocks
        self.gone = False  # left the field on its own; the simulator then removes it
        self.iso_state = "idle"  # idle | ready (selected, no RATS yet) | protocol | halted
        self.fsd = 256
        self._block = 1  # PICC block number, 1 after activation (ISO/IEC 14443-4 rule C)
        self._last_block = b""
        self._rx_chain = b""
        self._tx_chain = b""
        self._chained_sent = 0
        self._ready_at: float | None = None  # an answer in the making (WTX asked)
        self._answer = b""
        self._selected = False
        self._pending = b""
        # What the phone saw, for tests.
        self.challenges: list[bytes] = []
        self.presentations: list[bytes] = []
        self.activations = 0
        self.apdus = 0

    # ---- the HCE service ---------------------------------------------------

    def activate(self) -> None:
        """RATS received (by the PN532's automatic RATS or in software): ISO-DEP starts."""
        self.activations += 1
        self._selected = False
        self._pending = b""
        self.iso_state = "protocol"
        self._block = 1
        self._last_block = b""
        self._rx_chain = self._tx_chain = b""
        self._chained_sent = 0
        self._ready_at = None

    def select_l3(self) -> None:
        """Selected by the reader's anticollision (SAK sent), waiting for RATS."""
        self.iso_state = "ready"

    def deactivate(self) -> None:
        self._selected = False
        self._pending = b""
        self.iso_state = "idle"
        self._ready_at = None

    # ---- ISO/IEC 14443-4, as the phone's NFC controller runs it -----------------

    @property
    def fwt_s(self) -> float:
        return fwt_s(ats_fwi(self.ats))

    def rf_receive(self, frame: bytes, at: float) -> RfAnswer | None:
        """A frame from the reader (without CRC) that reaches the phone at time `at`
        (seconds, the simulator's clock). Returns the answer, or None for silence.

        Rules from ISO/IEC 14443-4 §7.5.4 (PICC rules), as nfcpy's initiator
        (nfc/tag/tt4.py) expects them."""
        if self.gone or not frame:
            return None
        if self.iso_state == "ready":
            # RATS: E0, FSDI (upper nibble) and CID. Anything else is not for layer 4.
            if len(frame) == 2 and frame[0] == 0xE0:
                self.fsd = FSD_TABLE[min(frame[1] >> 4, 8)]
                self.activate()
                return RfAnswer(bytes(self.ats), self.frame_delay_s)
            return None
        if self.iso_state != "protocol":
            return None
        pcb = frame[0]
        off = 1
        cid = b""
        if pcb & 0x08:  # CID follows (this phone accepts it and echoes it)
            if len(frame) < 2:
                return None
            cid, off = frame[1:2], 2
        if pcb & 0xE2 == 0x02:  # I-block: 000C CID NAD 1 bn
            if pcb & 0x04:
                off += 1  # NAD (not used by Android; skipped)
            return self._i_block(pcb, frame[off:], cid, at)
        if pcb & 0xE6 == 0xA2:  # R-block: 101 NAK CID 0 1 bn
            return self._r_block(pcb, cid, at)
        if pcb & 0xC7 == 0xC2:  # S-block: 11 xx CID 0 1 0
            if pcb & 0x30 == 0x00:  # S(DESELECT): answered, then HALT
                self.deactivate()
                self.iso_state = "halted"
                return RfAnswer(bytes([pcb]) + cid, self.frame_delay_s)
            if pcb & 0x30 == 0x30 and self._ready_at is not None:  # S(WTX) response
                wtxm = (frame[off] & 0x3F) if len(frame) > off else 1
                return self._answer_or_wtx(at, max(1, wtxm) * self.fwt_s, cid)
        return None  # not a valid block: the PICC stays silent

    def _i_block(self, pcb: int, inf: bytes, cid: bytes, at: float) -> RfAnswer | None:
        bn = pcb & 0x01
        self._block = bn  # rule D: toggled to the received number before answering
        if pcb & 0x10:  # the reader chains: acknowledge (rule 10), keep the part
            self._rx_chain += inf
            block = bytes([0xA2 | (0x08 if cid else 0) | bn]) + cid
            self._last_block = block
            return RfAnswer(block, self.frame_delay_s)
        apdu, self._rx_chain = self._rx_chain + inf, b""
        self._answer = bytes(self.process_apdu(bytes(apdu)))
        self._tx_chain = b""
        self._chained_sent = 0
        self._ready_at = at + self.processing_time(bytes(apdu))
        return self._answer_or_wtx(at, self.fwt_s, cid)

    def _answer_or_wtx(self, at: float, window: float, cid: bytes) -> RfAnswer:
        assert self._ready_at is not None
        remaining = self._ready_at - at
        if remaining > window:
            # Slower than the frame waiting time: ask for more (S(WTX), ISO/IEC 14443-4
            # §7.3; nfcpy tt4.py answers it and waits WTXM x FWT).
            block = bytes([0xF2 | (0x08 if cid else 0)]) + cid + bytes([self.wtxm & 0x3F])
            self._last_block = block
            after = self.wtx_after_s if self.wtx_after_s is not None else window / 2
            return RfAnswer(block, after)
        self._ready_at = None
        self._tx_chain = self._answer
        return self._next_chunk(cid, max(remaining, self.frame_delay_s))

    def _next_chunk(self, cid: bytes, delay: float) -> RfAnswer:
        room = self.fsd - 3 - len(cid)  # PCB, CID, CRC_A (2) within FSD
        chunk, self._tx_chain = self._tx_chain[:room], self._tx_chain[room:]
        more = 0x10 if self._tx_chain else 0x00
        block = bytes([0x02 | more | (0x08 if cid else 0) | self._block]) + cid + chunk
        self._last_block = block
        if more:
            self._chained_sent += 1
            if self.leave_after_blocks is not None and (
                self._chained_sent >= self.leave_after_blocks
            ):
                self.gone = True  # this block still goes out; then the phone is away
        return RfAnswer(block, delay)

    def _r_block(self, pcb: int, cid: bytes, at: float) -> RfAnswer | None:
        bn = pcb & 0x01
        nak = bool(pcb & 0x10)
        if bn == self._block:  # rule 11: the last block again
            return RfAnswer(self._last_block, self.frame_delay_s) if self._last_block else None
        if nak:  # rule 12: R(NAK) with another number -> R(ACK) (nfcpy's presence check)
            block = bytes([0xA2 | (0x08 if cid else 0) | self._block]) + cid
            return RfAnswer(block, self.frame_delay_s)
        if self._tx_chain:  # rule 13 (and rule E: toggle): the next block of the chain
            self._block ^= 1
            return self._next_chunk(cid, self.frame_delay_s)
        return None

    def processing_time(self, apdu: bytes) -> float:
        if len(apdu) >= 2 and apdu[0] == CLA_COMPTOIR and apdu[1] == INS_PRESENT:
            return self.present_time_s
        return self.apdu_time_s

    def process_apdu(self, apdu: bytes) -> bytes:
        self.apdus += 1
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        if cla == 0x00 and ins == 0xA4:
            return self._select(apdu, p1, p2)
        if not self._selected:
            # Android routes nothing to a service before a SELECT of its AID.
            return SW_NOT_FOUND
        if cla == CLA_COMPTOIR and ins == INS_PRESENT:
            return self._present(apdu, p1, p2)
        if cla == 0x00 and ins == 0xC0:
            return self._get_response(apdu)
        if cla not in (0x00, CLA_COMPTOIR):
            return SW_CLA
        return SW_INS

    def _select(self, apdu: bytes, p1: int, p2: int) -> bytes:
        if p1 != 0x04:
            return SW_WRONG_P1P2
        if len(apdu) < 5 or len(apdu) < 5 + apdu[4]:
            return SW_WRONG_LENGTH
        aid = bytes(apdu[5 : 5 + apdu[4]])
        if aid != COMPTOIR_AID:
            self._selected = False
            return SW_NOT_FOUND
        self._selected = True
        self._pending = b""
        return bytes([APP_VERSION]) + SW_OK

    @staticmethod
    def _le(apdu: bytes, data_end: int) -> int:
        if len(apdu) > data_end:
            return apdu[data_end] or 256
        return 256

    def _present(self, apdu: bytes, p1: int, p2: int) -> bytes:
        if p1 or p2:
            return SW_WRONG_P1P2
        if len(apdu) < 5 or apdu[4] != CHALLENGE_LEN or len(apdu) < 5 + CHALLENGE_LEN:
            return SW_WRONG_LENGTH
        if self.locked:
            return SW_SECURITY
        challenge = bytes(apdu[5 : 5 + CHALLENGE_LEN])
        presentation = bytes(self.make_presentation(challenge))
        self.challenges.append(challenge)
        self.presentations.append(presentation)
        self._pending = presentation
        return self._page(self._le(apdu, 5 + CHALLENGE_LEN))

    def _get_response(self, apdu: bytes) -> bytes:
        if not self._pending:
            return SW_CONDITIONS
        return self._page(self._le(apdu, 4))

    def _page(self, le: int) -> bytes:
        n = min(le, self.chunk, len(self._pending))
        page, self._pending = self._pending[:n], self._pending[n:]
        if not self._pending:
            return page + SW_OK
        left = len(self._pending)
        return page + bytes([0x61, left if left < 256 else 0x00])
