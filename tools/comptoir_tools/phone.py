"""A simulated phone: the Comptoir wallet app in host card emulation (HCE).

It answers what an Android HCE service registered for the Comptoir AID answers
(APDUs in docs/nfc.md):

- ``00 A4 04 00 0A F0 'COMPTOIR' 01 00`` → ``01 90 00`` (protocol version 1);
  any other AID → ``6A 82`` (Android: no service for it).
- ``80 50 00 00 10 <challenge> Le`` → the first page of the presentation bound
  to the challenge, with ``61 xx`` while more is waiting, else ``90 00``.
- ``00 C0 00 00 Le`` (GET RESPONSE) → the next page.

Until the token format exists, the presentation comes from
``make_presentation(challenge)``; the default is an opaque, deterministic blob
that ends with an HMAC of the challenge (:func:`verify_default_presentation`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

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
    ) -> None:
        self.make_presentation = make_presentation or default_presentation
        self.locked = locked
        self.chunk = chunk
        # Android HCE turnaround per APDU, and the signing of a presentation
        # (ECDSA P-256 in the phone's keystore). Assumed values, configurable.
        self.apdu_time_s = apdu_time_s
        self.present_time_s = present_time_s
        self.name = name
        self._selected = False
        self._pending = b""
        # What the phone saw, for tests.
        self.challenges: list[bytes] = []
        self.presentations: list[bytes] = []
        self.activations = 0
        self.apdus = 0

    # ---- the HCE service ---------------------------------------------------

    def activate(self) -> None:
        self.activations += 1
        self._selected = False
        self._pending = b""

    def deactivate(self) -> None:
        self._selected = False
        self._pending = b""

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
