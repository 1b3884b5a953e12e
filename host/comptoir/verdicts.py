"""What the board shows for a verification result, the same for NFC and QR: the
VERDICT frame's verdict, reason code and display text (docs/protocol.md)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from comptoir.tokens.model import Refused, Result, Verified
from comptoir.tokens.reasons import ERROR_REASONS, Reason
from comptoir_link import frames as F

MAX_DISPLAY_TEXT = 64

# VERDICT reason codes (u16): 0 = none (accepted), then each refusal Reason in the order of
# its declaration (reasons are only ever appended, so codes stay stable).
REASON_CODES: dict[Reason, int] = {r: i for i, r in enumerate(Reason, start=1)}

SendVerdict = Callable[[str, int, int, int, str], None]  # port, object id, verdict, reason, text
# Called with a verification's result before its verdict is sent (port, board id, object id,
# channel, result); returns the result to show (comptoir.opener.TransactionOpener.admit).
Admit = Callable[[str, str, int, str, Result], Result]


def verdict_for(result: Result) -> tuple[int, int, str]:
    """(verdict, reason code, display text) for a verification result. Never personal data:
    the text travels to the board and into logs."""
    if isinstance(result, Verified):
        n = len(result.beneficiaries)
        if n:
            # Someone must pick who is served: the insured person or one of n beneficiaries.
            return F.V_CHOOSE_BENEFICIARY, 0, f"choose beneficiary ({n + 1})"
        return F.V_ACCEPTED, 0, "accepted"
    assert isinstance(result, Refused)
    if result.reason is Reason.STATE_UNAVAILABLE:
        return F.V_ERROR, REASON_CODES[result.reason], "error: shared database unreachable"
    if result.reason in ERROR_REASONS:
        return F.V_ERROR, REASON_CODES[result.reason], "error"
    return F.V_REFUSED, REASON_CODES[result.reason], result.reason.value


def verdict_payload(object_id: int, verdict: int, reason: int, text: str) -> bytes:
    """VERDICT payload: object id u16, verdict u8, reason u16, UTF-8 display text."""
    t = text.encode()[:MAX_DISPLAY_TEXT]
    return struct.pack("<HBH", object_id & 0xFFFF, verdict, reason) + t


def verdict_sender(daemon: Any) -> SendVerdict:
    """send_verdict for a `comptoir.daemon.Daemon` (anything with send(port, ftype, payload))."""

    def send(port: str, object_id: int, verdict: int, reason: int, text: str) -> None:
        daemon.send(port, F.VERDICT, verdict_payload(object_id, verdict, reason, text))

    return send


