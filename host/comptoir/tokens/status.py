"""Deactivated phones: status lists in the IETF Token Status List shape
(draft-ietf-oauth-status-list, CWT form).

A list is a CWT signed by an issuer certificate that has the status role and names the list:
  protected {1: -7, 4: kid, 16: "application/statuslist+cwt"}
  claims {2 sub: list id, 6 iat, 4 exp, 65534 ttl, 65533 {"bits": 1|2|4|8, "lst": zlib(bytes)}}
Entry i is `bits` wide, least significant bits first within each byte. 0 valid, 1 invalid,
2 suspended; anything else is treated as invalid (fail closed).
The credential carries only its index; the list id comes from its issuer's certificate.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass

from . import cbor_safe, cose
from .cbor_safe import CborLimits
from .claims import EXP, IAT, bstr, claims_map, text, uint
from .reasons import Reason, TokenError
from .trust import ROLE_SIGN_STATUS_LISTS, TrustStore

SUB = 2
TTL = 65534
STATUS_LIST = 65533
TYP_STATUS_LIST = "application/statuslist+cwt"

VALID, INVALID, SUSPENDED = 0, 1, 2
MAX_DECOMPRESSED = 4 << 20  # 16 M entries at 2 bits; a bigger "list" is a zlib bomb

_LIMITS = CborLimits(max_bytes=2 << 20, max_depth=3, max_items=16, max_container=8, top_tag=18)
_CLAIMS = CborLimits(max_bytes=2 << 20, max_depth=3, max_items=32, max_container=8)
_KEYS = frozenset((SUB, IAT, EXP, TTL, STATUS_LIST))


@dataclass(frozen=True, slots=True)
class StatusList:
    list_id: str
    issued_at: int
    expires_at: int
    ttl: int
    bits: int
    entries: bytes  # decompressed

    def __len__(self) -> int:
        return len(self.entries) * 8 // self.bits

    def get(self, index: int) -> int:
        pos = index * self.bits
        byte = pos >> 3
        if byte >= len(self.entries):
            raise TokenError(Reason.STATUS_INDEX_OUT_OF_RANGE)
        return (self.entries[byte] >> (pos & 7)) & ((1 << self.bits) - 1)


def parse_status_list(data: bytes, trust: TrustStore, now: int, skew: int = 60) -> StatusList:
    """Verify a status-list CWT against the trust store. Raises TokenError(STATUS_LIST_INVALID)."""
    try:
        return _parse(data, trust, now, skew)
    except TokenError as exc:
        if exc.reason is Reason.STATUS_LIST_INVALID:
            raise
        raise TokenError(Reason.STATUS_LIST_INVALID, exc.reason.value) from None


def _parse(data: bytes, trust: TrustStore, now: int, skew: int) -> StatusList:
    sign1 = cose.parse_sign1(data, _LIMITS, frozenset((cose.HDR_ALG, cose.HDR_KID, cose.HDR_TYP)))
    if sign1.protected.get(cose.HDR_TYP) != TYP_STATUS_LIST or sign1.kid is None:
        raise TokenError(Reason.STATUS_LIST_INVALID, "typ or kid")
    claims = cbor_safe.decode(sign1.payload, _CLAIMS)
    c = claims_map(claims, "status list", _KEYS, _KEYS)
    list_id = text(c[SUB], "sub")
    issued_at = uint(c[IAT], "iat")
    signer = None
    for cert in trust.certificates(sign1.kid):
        if (
            cert.allows(ROLE_SIGN_STATUS_LISTS)
            and cert.status_list == list_id
            and cert.not_before <= issued_at <= cert.not_after
            and cose.verify(sign1, cert.key)
        ):
            signer = cert
            break
    if signer is None:
        raise TokenError(Reason.STATUS_LIST_INVALID, "no trusted signer for this list")
    if issued_at > now + skew:
        raise TokenError(Reason.STATUS_LIST_INVALID, "issued in the future")
    sl = c[STATUS_LIST]
    if not isinstance(sl, dict) or sl.keys() != {"bits", "lst"}:
        raise TokenError(Reason.STATUS_LIST_INVALID, "status_list")
    bits = uint(sl["bits"], "bits", 8)
    if bits not in (1, 2, 4, 8):
        raise TokenError(Reason.STATUS_LIST_INVALID, "bits")
    compressed = bstr(sl["lst"], "lst", 1, _CLAIMS.max_bytes)
    inflater = zlib.decompressobj()
    try:
        entries = inflater.decompress(compressed, MAX_DECOMPRESSED + 1)
    except zlib.error:
        raise TokenError(Reason.STATUS_LIST_INVALID, "zlib") from None
    if len(entries) > MAX_DECOMPRESSED or not inflater.eof or inflater.unused_data:
        raise TokenError(Reason.STATUS_LIST_INVALID, "lst size or framing")
    return StatusList(list_id, issued_at, uint(c[EXP], "exp"), uint(c[TTL], "ttl"), bits, entries)


class NotNewer(TokenError):
    """A valid status list that is not strictly newer (by `iat`) than the one held: ignored."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.STATUS_LIST_INVALID, detail)


class StatusLists:
    """The status lists the host holds, by list id, with their staleness policy. Thread-safe.
    A list replaces the held one only when strictly newer (a higher `iat`): the same list read
    again, or an older one replayed, is refused with NotNewer and the held one stays."""

    def __init__(self, trust: TrustStore, *, grace: int = 3 * 86400, clock_skew: int = 60) -> None:
        self._trust = trust
        self._grace = grace
        self._skew = clock_skew
        self._lists: dict[str, StatusList] = {}
        self._lock = threading.Lock()

    def load(self, data: bytes, now: int) -> StatusList:
        new = parse_status_list(data, self._trust, now, self._skew)
        with self._lock:
            old = self._lists.get(new.list_id)
            if old is not None and new.issued_at <= old.issued_at:
                raise NotNewer(f"issued at {new.issued_at}, not after the held list's "
                               f"{old.issued_at}")
            self._lists[new.list_id] = new
        return new

    def held(self) -> list[StatusList]:
        with self._lock:
            return list(self._lists.values())

    @property
    def grace(self) -> int:
        return self._grace

    def status(self, list_id: str | None, index: int, now: int) -> int:
        current = self._lists.get(list_id) if list_id is not None else None
        if current is None:
            raise TokenError(Reason.STATUS_LIST_UNAVAILABLE)
        if now > current.expires_at + self._grace:
            raise TokenError(Reason.STATUS_LIST_STALE)
        return current.get(index)
