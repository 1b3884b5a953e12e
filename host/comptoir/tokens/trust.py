"""Trust material: the pinned anchor, issuer certificates and the signed trust list.

Chain: credential --(kid)--> issuer certificate --(signature)--> trust anchor.
Certificates are Comptoir's own compact COSE_Sign1/CBOR (not X.509): the host then parses one
hardened format for everything that comes from outside, and no ASN.1 parser sees hostile input.

The trust list is signed by an online list-signing key whose certificate (role TRUST_LIST) is
carried in the list's protected header; every issuer certificate on the list must still verify
under the anchor itself, so a compromised list signer cannot add an issuer (DCC's gateway model,
with the anchor check kept). Being on the current list is what makes a certificate usable.
A list has its own expiry and an explicit offline grace period (capped by the host's policy):
past expiry the host keeps working, with a warning, until the grace ends, then refuses.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from . import cbor_safe, cose
from .cbor_safe import CborLimits
from .claims import (
    EXP,
    IAT,
    NBF,
    TYP,
    TYP_CERTIFICATE,
    TYP_TRUST_LIST,
    bstr,
    check_typ,
    claims_map,
    text,
    uint,
)
from .reasons import Reason, TokenError

# Certificate claims.
CERT_SUBJECT = -2
CERT_KID = -3
CERT_KEY = -4
CERT_ROLES = -5
CERT_STATUS_LIST = -6  # issuers: the id of the status list their credentials index into

ROLE_ISSUE_CREDENTIALS = 1
ROLE_SIGN_STATUS_LISTS = 2
ROLE_SIGN_TRUST_LISTS = 4

# Trust list claims.
TL_SEQUENCE = -2
TL_GRACE = -3
TL_ENTRIES = -4

MAX_KEYS_PER_KID = 4  # bounds the signature checks one credential can cost
MAX_ENTRIES = 512

CERT_LIMITS = CborLimits(max_bytes=1024, max_depth=3, max_items=32, max_container=8, top_tag=18)
_CERT_CLAIMS = CborLimits(max_bytes=1024, max_depth=3, max_items=32, max_container=8)
_LIST_LIMITS = CborLimits(max_bytes=600_000, max_depth=3, max_items=16, max_container=8, top_tag=18)
_LIST_CLAIMS = CborLimits(
    max_bytes=600_000, max_depth=3, max_items=MAX_ENTRIES + 16, max_container=MAX_ENTRIES
)
_CERT_KEYS = frozenset(
    (TYP, NBF, EXP, CERT_SUBJECT, CERT_KID, CERT_KEY, CERT_ROLES, CERT_STATUS_LIST)
)
_LIST_KEYS = frozenset((TYP, IAT, EXP, TL_SEQUENCE, TL_GRACE, TL_ENTRIES))


@dataclass(frozen=True, slots=True)
class Certificate:
    subject: str
    kid: bytes
    key: ec.EllipticCurvePublicKey = field(repr=False)
    roles: int
    not_before: int
    not_after: int
    status_list: str | None

    def allows(self, role: int) -> bool:
        return bool(self.roles & role)


def _certificate_claims(payload: bytes) -> dict[Any, Any]:
    claims = cbor_safe.decode(payload, _CERT_CLAIMS)
    check_typ(claims, TYP_CERTIFICATE)
    return claims_map(claims, "certificate", _CERT_KEYS, _CERT_KEYS - {CERT_STATUS_LIST})


def parse_certificate(data: bytes, anchors: Sequence[ec.EllipticCurvePublicKey]) -> Certificate:
    """Parse a certificate and check it verifies under one of the anchors."""
    sign1 = cose.parse_sign1(data, CERT_LIMITS, frozenset((cose.HDR_ALG, cose.HDR_KID)))
    if not any(cose.verify(sign1, anchor) for anchor in anchors):
        raise TokenError(Reason.ISSUER_NOT_UNDER_ANCHOR)
    c = _certificate_claims(sign1.payload)
    status_list = c.get(CERT_STATUS_LIST)
    cert = Certificate(
        subject=text(c[CERT_SUBJECT], "subject"),
        kid=bstr(c[CERT_KID], "kid", 1, 16),
        key=cose.parse_key(c[CERT_KEY]),
        roles=uint(c[CERT_ROLES], "roles", 0xFF),
        not_before=uint(c[NBF], "nbf"),
        not_after=uint(c[EXP], "exp"),
        status_list=None if status_list is None else text(status_list, "status list"),
    )
    if cert.not_before > cert.not_after:
        raise TokenError(Reason.CLAIMS_MALFORMED, "certificate validity")
    return cert


def unverified_kid(data: bytes) -> bytes | None:
    """The kid a certificate claims, without trusting it (to name why it was refused)."""
    try:
        sign1 = cose.parse_sign1(data, CERT_LIMITS, frozenset((cose.HDR_ALG, cose.HDR_KID)))
        kid = _certificate_claims(sign1.payload)[CERT_KID]
    except TokenError:
        return None
    return kid if isinstance(kid, bytes) else None


@dataclass(frozen=True, slots=True)
class TrustList:
    sequence: int
    issued_at: int
    expires_at: int
    grace: int  # seconds of offline grace after expires_at (already capped by the policy)
    by_kid: dict[bytes, tuple[Certificate, ...]]
    rejected_kids: frozenset[bytes]  # entries that claim this kid but are not under the anchor


class TrustStore:
    """The host's trust state: pinned anchors plus the current trust list. Thread-safe."""

    def __init__(
        self,
        anchors: Sequence[ec.EllipticCurvePublicKey],
        *,
        max_grace: int = 7 * 86400,
        clock_skew: int = 60,
    ) -> None:
        if not anchors:
            raise ValueError("at least one trust anchor")
        self._anchors = tuple(anchors)
        self._max_grace = max_grace
        self._skew = clock_skew
        self._lock = threading.Lock()
        self._list: TrustList | None = None

    @property
    def anchors(self) -> tuple[ec.EllipticCurvePublicKey, ...]:
        return self._anchors

    @property
    def current(self) -> TrustList | None:
        return self._list

    def load(self, data: bytes, now: int) -> TrustList:
        """Verify and install a trust list. Raises TokenError (TRUST_LIST_INVALID, _ROLLBACK);
        on failure the previous list stays in place."""
        try:
            new = self._parse(data, now)
        except TokenError as exc:
            if exc.reason in (Reason.TRUST_LIST_INVALID, Reason.TRUST_LIST_ROLLBACK):
                raise
            raise TokenError(Reason.TRUST_LIST_INVALID, exc.reason.value) from None
        with self._lock:
            if self._list is not None and new.sequence < self._list.sequence:
                raise TokenError(Reason.TRUST_LIST_ROLLBACK, f"sequence {new.sequence}")
            self._list = new
        return new

    def _parse(self, data: bytes, now: int) -> TrustList:
        sign1 = cose.parse_sign1(
            data, _LIST_LIMITS, frozenset((cose.HDR_ALG, cose.HDR_KID, cose.HDR_SIGNER_CERT))
        )
        signer_bytes = sign1.protected.get(cose.HDR_SIGNER_CERT)
        if not isinstance(signer_bytes, bytes):
            raise TokenError(Reason.TRUST_LIST_INVALID, "no signer certificate")
        signer = parse_certificate(signer_bytes, self._anchors)
        if sign1.kid != signer.kid:
            # The header kid must name the certificate carried with it: a kid that matches
            # nothing (or another key) could only mislead a verifier that looks keys up by kid.
            raise TokenError(Reason.TRUST_LIST_INVALID, "kid is not the signer certificate's")
        if not signer.allows(ROLE_SIGN_TRUST_LISTS):
            raise TokenError(Reason.TRUST_LIST_INVALID, "signer lacks the trust-list role")
        if not signer.not_before - self._skew <= now <= signer.not_after + self._skew:
            raise TokenError(Reason.TRUST_LIST_INVALID, "signer certificate not valid now")
        if not cose.verify(sign1, signer.key):
            raise TokenError(Reason.TRUST_LIST_INVALID, "signature")
        claims = cbor_safe.decode(sign1.payload, _LIST_CLAIMS)
        check_typ(claims, TYP_TRUST_LIST)
        c = claims_map(claims, "trust list", _LIST_KEYS, _LIST_KEYS)
        issued_at = uint(c[IAT], "iat")
        if issued_at > now + self._skew:
            raise TokenError(Reason.TRUST_LIST_INVALID, "issued in the future")
        by_kid: dict[bytes, list[Certificate]] = {}
        rejected: set[bytes] = set()
        entries = c[TL_ENTRIES]
        if not isinstance(entries, list):
            raise TokenError(Reason.TRUST_LIST_INVALID, "entries")
        for entry in entries:
            entry = bstr(entry, "entry", 1, CERT_LIMITS.max_bytes)
            try:
                cert = parse_certificate(entry, self._anchors)
            except TokenError as exc:
                kid = (
                    unverified_kid(entry) if exc.reason is Reason.ISSUER_NOT_UNDER_ANCHOR else None
                )
                if kid is None:
                    raise TokenError(Reason.TRUST_LIST_INVALID, "entry") from None
                rejected.add(kid)
                continue
            by_kid.setdefault(cert.kid, []).append(cert)
            if len(by_kid[cert.kid]) > MAX_KEYS_PER_KID:
                raise TokenError(Reason.TRUST_LIST_INVALID, "too many keys under one kid")
        return TrustList(
            sequence=uint(c[TL_SEQUENCE], "sequence"),
            issued_at=issued_at,
            expires_at=uint(c[EXP], "exp"),
            grace=min(uint(c[TL_GRACE], "grace"), self._max_grace),
            by_kid={k: tuple(v) for k, v in by_kid.items()},
            rejected_kids=frozenset(rejected - by_kid.keys()),
        )

    def check(self, now: int) -> tuple[TrustList, tuple[str, ...]]:
        """The list to use now, with warnings; refuses when missing or expired past grace."""
        current = self._list
        if current is None:
            raise TokenError(Reason.TRUST_LIST_MISSING)
        if now <= current.expires_at:
            return current, ()
        if now <= current.expires_at + current.grace:
            return current, ("trust_list_in_grace",)
        raise TokenError(Reason.TRUST_LIST_EXPIRED)

    def certificates(self, kid: bytes) -> tuple[Certificate, ...]:
        current = self._list
        return () if current is None else current.by_kid.get(kid, ())
