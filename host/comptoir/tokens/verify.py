"""The verification pipeline: one path for QR and NFC presentations.

Order (each step refuses with its own reason; nothing is believed before it is authenticated):
 1. transport: size, QR prefix and base45 (QR only)
 2. presentation envelope: bounded CBOR scan, tagged COSE_Sign1, alg pinned to ES256
 3. presentation claims (structure only) and the channel rule: QR carries no challenge, NFC must
 4. credential envelope, then trust: trust list present and not past its grace, issuer
    certificate(s) for the kid (every one is tried), issuer signature, issuer role
 5. credential claims, now authenticated: schema, NIR rules, beneficiaries, device key; the
    issuer certificate must cover the credential's validity
 6. device signature over the presentation (the key bound in the credential)
 7. times with the bounded clock skew; status list
 8. NFC: the challenge is consumed (unknown, expired or reused: refused)
 9. commit, atomically: activation generation, QR replay cache (by cti), counter increasing

Steps 4-5 depend only on the credential's bytes, the current trust list and (for "birth date
not in the future") the day; a phone presents the same credential bytes many times. So their
result is memoised per Verifier, keyed by the credential bytes themselves (dict equality: never
a digest, so only byte-identical credentials hit), and used only while the same trust-list
object is installed and the day has not gone back. Everything that depends on the presentation
or on the moment (trust-list expiry, device signature, times, status list, challenge, replay,
counter, activation generation) is checked on every presentation. Only credentials that passed
steps 4-5 are stored, so hostile input cannot fill the cache.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from comptoir.clock import now as clock_now

from . import base45, canonical, cbor_safe, claims, cose
from .cbor_safe import CborLimits
from .challenges import ChallengeRegistry
from .model import Channel, Credential, Refused, Result, Verified
from .nir import mask_nir
from .reasons import Reason, TokenError
from .replay import replay_key
from .state import ReplayState
from .status import INVALID, SUSPENDED, VALID, StatusLists
from .trust import ROLE_ISSUE_CREDENTIALS, Certificate, TrustList, TrustStore

log = logging.getLogger("comptoir.tokens")

QR_PREFIX = "CV1:"
MAX_PRESENTATION_BYTES = 2048
MAX_QR_CHARS = len(QR_PREFIX) + (MAX_PRESENTATION_BYTES * 3 + 1) // 2
MAX_CLOCK_SKEW = 300

# Envelopes: tag 18 [protected, unprotected, payload, signature]. Depth 3 lets the scan reach
# inside a non-empty unprotected header, so that it is refused by name (not as "too deep").
PRESENTATION_LIMITS = CborLimits(
    max_bytes=MAX_PRESENTATION_BYTES, max_depth=3, max_items=16, max_container=4, top_tag=18
)
PRESENTATION_CLAIMS_LIMITS = CborLimits(
    max_bytes=MAX_PRESENTATION_BYTES, max_depth=2, max_items=16, max_container=8
)
CREDENTIAL_LIMITS = CborLimits(
    max_bytes=MAX_PRESENTATION_BYTES, max_depth=3, max_items=16, max_container=4, top_tag=18
)
# Credential claims: map > beneficiaries > beneficiary > rights > period > day.
CREDENTIAL_CLAIMS_LIMITS = CborLimits(
    max_bytes=MAX_PRESENTATION_BYTES, max_depth=6, max_items=700, max_container=16
)
_CREDENTIAL_HEADERS = frozenset((cose.HDR_ALG, cose.HDR_KID))
CREDENTIAL_CACHE_SIZE = 1024  # checked credentials kept per Verifier (a few KiB each)


@dataclass(frozen=True, slots=True)
class _CheckedCredential:
    """Steps 4-5 passed for these credential bytes under `trust_list`, on UTC day `day`."""

    trust_list: TrustList
    issuer: Certificate
    credential: Credential
    day: int


@dataclass(frozen=True, slots=True)
class Policy:
    clock_skew: int = 60  # seconds either way; bounded by MAX_CLOCK_SKEW
    qr_max_age: int = 120  # a QR presentation older than this is refused
    nfc_max_age: int = 30
    require_status_list: bool = True  # False only for tests of the other checks

    def __post_init__(self) -> None:
        if not 0 <= self.clock_skew <= MAX_CLOCK_SKEW:
            raise ValueError(f"clock_skew must be within 0..{MAX_CLOCK_SKEW} s")
        if not 0 < self.qr_max_age <= 600 or not 0 < self.nfc_max_age <= 600:
            raise ValueError("presentation max age must be within 1..600 s")


def _credential_envelope(data: bytes) -> cose.Sign1:
    """The credential's COSE_Sign1: read directly in its canonical encoding (canonical.py),
    else through the general path, which refuses what is wrong by name."""
    fields = canonical.read_credential_envelope(data)
    if fields is None:
        return cose.parse_sign1(data, CREDENTIAL_LIMITS, _CREDENTIAL_HEADERS)
    protected, kid, payload, signature = fields
    return cose.Sign1(protected, {cose.HDR_ALG: cose.ALG_ES256, cose.HDR_KID: kid}, payload,
                      signature)


def decode_qr(text: str | bytes) -> bytes:
    """QR text (prefix + base45) -> presentation bytes."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("ascii")
        except UnicodeDecodeError:
            raise TokenError(Reason.QR_BAD_BASE45, "not ASCII") from None
    if not isinstance(text, str):
        raise TokenError(Reason.QR_BAD_PREFIX, "not text")
    if len(text) > MAX_QR_CHARS:
        raise TokenError(Reason.INPUT_TOO_LARGE, f"{len(text)} characters")
    if not text.startswith(QR_PREFIX):
        raise TokenError(Reason.QR_BAD_PREFIX)
    try:
        return base45.decode(text[len(QR_PREFIX) :])
    except base45.Base45Error as exc:
        raise TokenError(Reason.QR_BAD_BASE45, str(exc)) from None


def encode_qr(presentation: bytes) -> str:
    return QR_PREFIX + base45.encode(presentation)


class Verifier:
    def __init__(
        self,
        trust: TrustStore,
        status: StatusLists,
        state: ReplayState,
        challenges: ChallengeRegistry,
        policy: Policy | None = None,
        clock: Callable[[], float] = clock_now,
        *,
        credential_cache: int = CREDENTIAL_CACHE_SIZE,
    ) -> None:
        """`credential_cache`: how many checked credentials to remember (0: none)."""
        self.trust = trust
        self.status = status
        self.state = state
        self.challenges = challenges
        self.policy = policy or Policy()
        self._clock = clock
        self._cache_size = credential_cache
        self._cache: dict[bytes, _CheckedCredential] = {}
        self._cache_lock = threading.Lock()
        self.cache_hits = 0  # presentations whose credential checks came from the cache
        self.cache_misses = 0  # ... and those that checked the issuer signature and claims

    def verify_qr(self, text: str | bytes, *, now: int | None = None) -> Result:
        now = int(self._clock()) if now is None else now
        try:
            data = decode_qr(text)
        except TokenError as exc:
            return self._refuse(exc, Channel.QR, None)
        return self._verify(data, Channel.QR, None, now)

    def verify_nfc(self, data: bytes, board_id: str, *, now: int | None = None) -> Result:
        now = int(self._clock()) if now is None else now
        return self._verify(data, Channel.NFC, board_id, now)

    def _verify(self, data: bytes, channel: Channel, board_id: str | None, now: int) -> Result:
        try:
            result = self._run(data, channel, board_id, now)
        except TokenError as exc:
            return self._refuse(exc, channel, board_id)
        except Exception:
            # Fail closed on a bug rather than take the daemon down; the traceback is logged
            # without the input (it may hold personal data).
            log.exception("token verification failed unexpectedly (channel %s)", channel)
            return Refused(Reason.INTERNAL_ERROR)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "accepted %s presentation: credential %s, insured %s",
                channel,
                result.credential_id.hex()[:8],
                mask_nir(result.insured.nir),
            )
        return result

    @staticmethod
    def _refuse(exc: TokenError, channel: Channel, board_id: str | None) -> Refused:
        log.info("refused %s presentation (board %s): %s", channel, board_id, exc)
        return Refused(exc.reason, exc.detail)

    def _run(self, data: bytes, channel: Channel, board_id: str | None, now: int) -> Verified:
        policy = self.policy
        skew = policy.clock_skew
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TokenError(Reason.CBOR_MALFORMED, "not bytes")
        data = bytes(data)
        fields = canonical.read_presentation(data)
        if fields is not None:  # the canonical encoding, read directly (see canonical.py)
            to_be_signed, signature, iat, cti, counter, cred_bytes, challenge = fields
        else:
            pres = cose.parse_sign1(data, PRESENTATION_LIMITS)
            pres_claims = cbor_safe.decode(pres.payload, PRESENTATION_CLAIMS_LIMITS)
            iat, cti, counter, cred_bytes, challenge = claims.parse_presentation(pres_claims)
            to_be_signed = cose.sig_structure(pres.protected_bytes, pres.payload)
            signature = pres.signature
        if channel is Channel.QR and challenge is not None:
            raise TokenError(Reason.CHALLENGE_UNEXPECTED)
        if channel is Channel.NFC and challenge is None:
            raise TokenError(Reason.CHALLENGE_MISSING)

        issuer, cred, warnings = self._credential(cred_bytes, now)

        if not cose.verify_signed(to_be_signed, signature, cred.device_key):
            raise TokenError(Reason.PRESENTATION_SIGNATURE_INVALID)

        if now < cred.not_before - skew:
            raise TokenError(Reason.CREDENTIAL_NOT_YET_VALID)
        if now > cred.expires_at + skew:
            raise TokenError(Reason.CREDENTIAL_EXPIRED)
        if iat > now + skew:
            raise TokenError(Reason.CLOCK_SKEW, f"presented {iat - now} s in the future")
        max_age = policy.qr_max_age if channel is Channel.QR else policy.nfc_max_age
        if iat < now - max_age - skew:
            raise TokenError(Reason.PRESENTATION_TOO_OLD)

        self._check_status(issuer, cred, now)
        if channel is Channel.NFC:
            if board_id is None or challenge is None:
                raise TokenError(Reason.CHALLENGE_UNKNOWN, "no board")
            # Spent even if the commit below refuses: the board asks for a new one per tap.
            self.challenges.consume(board_id, challenge, now)
            replay = None
        else:
            # Kept until the presentation would be refused as too old anyway.
            replay = (replay_key(cred.credential_id, cti), iat + max_age + 2 * skew)
        reason = self.state.commit(
            now=now,
            credential_id=cred.credential_id,
            credential_expires=cred.expires_at + skew,
            counter=counter,
            nir=cred.insured.nir,
            generation=cred.activation_generation,
            replay=replay,
        )
        if reason is not None:
            raise TokenError(reason)
        return Verified(
            channel=channel,
            credential=cred,
            issuer=issuer.subject,
            presentation_id=cti,
            presented_at=iat,
            counter=counter,
            warnings=warnings,
        )

    def _credential(
        self, cred_bytes: bytes, now: int
    ) -> tuple[Certificate, Credential, tuple[str, ...]]:
        """Steps 4-5: the issuer certificate and the checked credential, with the trust-list
        warnings. Served from the cache only for byte-identical credential bytes checked under
        the trust list installed now, on this day or an earlier one."""
        day = now // 86400  # the UTC day parse_credential checks birth dates against
        entry = self._cache.get(cred_bytes) if self._cache_size else None
        if entry is None:
            # Malformed envelopes are refused before the trust list is looked at, as always.
            cred_sign1 = _credential_envelope(cred_bytes)
        trust_list, warnings = self.trust.check(now)
        if entry is not None:
            if entry.trust_list is trust_list and entry.day <= day:
                self.cache_hits += 1
                return entry.issuer, entry.credential, warnings
            # Same bytes, accepted before: parsing the envelope again gives the same result.
            cred_sign1 = _credential_envelope(cred_bytes)
        self.cache_misses += 1
        issuer = self._issuer(cred_sign1, trust_list.by_kid, trust_list.rejected_kids)
        cred_claims = cbor_safe.decode(cred_sign1.payload, CREDENTIAL_CLAIMS_LIMITS)
        cred = claims.parse_credential(cred_claims, now)
        if not issuer.not_before <= cred.issued_at or cred.expires_at > issuer.not_after:
            raise TokenError(Reason.ISSUER_CERT_VALIDITY)
        if self._cache_size:
            self._remember(cred_bytes, _CheckedCredential(trust_list, issuer, cred, day))
        return issuer, cred, warnings

    def _remember(self, cred_bytes: bytes, entry: _CheckedCredential) -> None:
        cache = self._cache
        with self._cache_lock:
            cache.pop(cred_bytes, None)
            while len(cache) >= self._cache_size:
                del cache[next(iter(cache))]  # the oldest entry
            cache[cred_bytes] = entry

    @staticmethod
    def _issuer(
        cred_sign1: cose.Sign1,
        by_kid: dict[bytes, tuple[Certificate, ...]],
        rejected: frozenset[bytes],
    ) -> Certificate:
        kid = cred_sign1.kid
        if kid is None:
            raise TokenError(Reason.COSE_MALFORMED, "credential has no kid")
        candidates = by_kid.get(kid, ())
        if not candidates:
            if kid in rejected:
                raise TokenError(Reason.ISSUER_NOT_UNDER_ANCHOR)
            raise TokenError(Reason.ISSUER_UNKNOWN)
        # Several certificates may share a kid (it is a short label, not a key hash we trust):
        # try each one, never just the first.
        for cert in candidates:
            if cose.verify(cred_sign1, cert.key):
                if not cert.allows(ROLE_ISSUE_CREDENTIALS):
                    raise TokenError(Reason.ISSUER_ROLE_NOT_ALLOWED)
                return cert
        raise TokenError(Reason.CREDENTIAL_SIGNATURE_INVALID)

    def _check_status(self, issuer: Certificate, cred: Credential, now: int) -> None:
        try:
            value = self.status.status(issuer.status_list, cred.status_index, now)
        except TokenError as exc:
            if exc.reason is Reason.STATUS_LIST_UNAVAILABLE and not self.policy.require_status_list:
                return
            raise
        if value == VALID:
            return
        if value == SUSPENDED:
            raise TokenError(Reason.CREDENTIAL_SUSPENDED)
        raise TokenError(Reason.CREDENTIAL_REVOKED, f"status {value}" if value != INVALID else "")
