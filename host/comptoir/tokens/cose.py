"""COSE_Sign1 (RFC 9052) with ES256 only, and EC2 P-256 COSE_Keys (RFC 9053).

One algorithm, pinned: the protected header must say ES256 (-7) and nothing here can be told
otherwise, so there is no `alg` to confuse. Signatures on the wire are raw r||s (64 bytes, COSE
style); `cryptography` wants DER, so they are converted at this edge. High-S signatures are
accepted (the ECDSA standard allows both; (r, n-s) verifies whenever (r, s) does): replay is
keyed by the token id, never by signature bytes, so malleability gains an attacker nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from . import cbor_safe
from .cbor_safe import CborLimits
from .reasons import Reason, TokenError

TAG_SIGN1 = 18
ALG_ES256 = -7

# Header labels (RFC 9052 §3.1), plus one private-use label (< -65536) of our own.
HDR_ALG = 1
HDR_CRIT = 2
HDR_KID = 4
HDR_TYP = 16  # RFC 9596
HDR_SIGNER_CERT = -65537  # a Comptoir certificate (COSE_Sign1 bytes) for the signing key

# COSE_Key labels and values (RFC 9053 §7.1).
KEY_KTY, KEY_CRV, KEY_X, KEY_Y = 1, -1, -2, -3
KTY_EC2 = 2
CRV_P256 = 1

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_HEADER_LIMITS = CborLimits(max_bytes=1024, max_depth=2, max_items=16, max_container=8)
_ES256_ONLY = b"\xa1\x01\x26"  # {1: -7}


@dataclass(frozen=True, slots=True)
class Sign1:
    protected_bytes: bytes
    protected: dict[int, Any]
    payload: bytes
    signature: bytes

    @property
    def kid(self) -> bytes | None:
        kid = self.protected.get(HDR_KID)
        return kid if isinstance(kid, bytes) else None


def parse_sign1(
    data: bytes,
    limits: CborLimits,
    allowed_headers: frozenset[int] = frozenset((HDR_ALG,)),
) -> Sign1:
    """Parse a tagged COSE_Sign1, check its headers; the signature is not checked here."""
    obj = cbor_safe.decode(data, limits)
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != TAG_SIGN1:
        raise TokenError(Reason.COSE_MALFORMED, "not a tagged COSE_Sign1")
    body = obj.value
    if not isinstance(body, list) or len(body) != 4:
        raise TokenError(Reason.COSE_MALFORMED, "COSE_Sign1 is not a 4-element array")
    protected_bytes, unprotected, payload, signature = body
    if not isinstance(protected_bytes, bytes) or not protected_bytes:
        raise TokenError(Reason.COSE_MALFORMED, "protected header")
    if not isinstance(unprotected, dict):
        raise TokenError(Reason.COSE_MALFORMED, "unprotected header is not a map")
    if unprotected:
        # Everything that matters is signed: a kid or alg out here could only mislead.
        raise TokenError(Reason.UNPROTECTED_HEADER_NOT_EMPTY)
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise TokenError(Reason.COSE_MALFORMED, "payload or signature is not a byte string")
    if protected_bytes == _ES256_ONLY:
        # Every presentation's header: the one value decoding these 3 bytes gives, without
        # the scan and cbor2 round trip (a pure function of the bytes, so nothing is skipped).
        protected = {HDR_ALG: ALG_ES256}
    else:
        protected = cbor_safe.decode(protected_bytes, _HEADER_LIMITS)
    if not isinstance(protected, dict):
        raise TokenError(Reason.COSE_MALFORMED, "protected header is not a map")
    alg = protected.get(HDR_ALG)
    if type(alg) is not int or alg != ALG_ES256:
        raise TokenError(Reason.ALG_NOT_ALLOWED, f"alg {alg!r}")
    if not protected.keys() <= allowed_headers:
        raise TokenError(Reason.COSE_MALFORMED, "unexpected header label")
    if len(signature) != 64:
        raise TokenError(Reason.COSE_MALFORMED, "ES256 signature is not 64 bytes")
    return Sign1(protected_bytes, protected, payload, signature)


def _bstr_head(n: int) -> bytes:
    if n < 24:
        return bytes((0x40 | n,))
    if n < 0x100:
        return bytes((0x58, n))
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    return b"\x5a" + n.to_bytes(4, "big")


def sig_structure(protected_bytes: bytes, payload: bytes) -> bytes:
    """["Signature1", protected, external_aad = h'', payload], CBOR-encoded (RFC 9052 §4.4)."""
    return (
        b"\x84\x6aSignature1"
        + _bstr_head(len(protected_bytes))
        + protected_bytes
        + b"\x40"
        + _bstr_head(len(payload))
        + payload
    )


def der_signature(raw: bytes) -> bytes | None:
    """Raw r || s (32 bytes each) -> the DER ECDSA-Sig-Value `cryptography` verifies; None if
    r or s is zero (never valid). Same bytes as encode_dss_signature (tested), without going
    through two Python ints."""
    r = raw[:32].lstrip(b"\0")
    s = raw[32:].lstrip(b"\0")
    if not r or not s:
        return None
    if r[0] & 0x80:
        r = b"\0" + r
    if s[0] & 0x80:
        s = b"\0" + s
    # At most 2 * (2 + 33) = 70 bytes: every length fits the short form.
    return b"".join((b"\x30", bytes((len(r) + len(s) + 4, 2, len(r))), r, bytes((2, len(s))), s))


def verify_signed(to_be_signed: bytes, signature: bytes, key: ec.EllipticCurvePublicKey) -> bool:
    """ES256 over the Sig_structure bytes `to_be_signed`, `signature` raw r || s."""
    der = der_signature(signature)
    if der is None:
        return False
    try:
        key.verify(der, to_be_signed, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True


def verify(sign1: Sign1, key: ec.EllipticCurvePublicKey) -> bool:
    return verify_signed(sig_structure(sign1.protected_bytes, sign1.payload), sign1.signature, key)


def sign(
    private_key: ec.EllipticCurvePrivateKey, protected: dict[int, Any], payload: bytes
) -> bytes:
    """Make a tagged COSE_Sign1 (used by the test PKI and the wallet)."""
    if not isinstance(private_key.curve, ec.SECP256R1):
        raise ValueError("ES256 needs a P-256 key")
    protected_bytes = cbor2.dumps(protected)
    der = private_key.sign(sig_structure(protected_bytes, payload), _ECDSA_SHA256)
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return cbor2.dumps(cbor2.CBORTag(TAG_SIGN1, [protected_bytes, {}, payload, raw]))


def encode_key(key: ec.EllipticCurvePublicKey, *, compressed: bool) -> dict[int, Any]:
    nums = key.public_numbers()
    x = nums.x.to_bytes(32, "big")
    y: bytes | bool = bool(nums.y & 1) if compressed else nums.y.to_bytes(32, "big")
    return {KEY_KTY: KTY_EC2, KEY_CRV: CRV_P256, KEY_X: x, KEY_Y: y}


def parse_key(obj: Any) -> ec.EllipticCurvePublicKey:
    """A COSE_Key that must be EC2 on P-256 (x and y, or x and the sign bit of y)."""
    if not isinstance(obj, dict) or not obj.keys() <= {KEY_KTY, KEY_CRV, KEY_X, KEY_Y}:
        raise TokenError(Reason.KEY_MALFORMED, "COSE_Key labels")
    kty, crv = obj.get(KEY_KTY), obj.get(KEY_CRV)
    if type(kty) is not int or type(crv) is not int:
        raise TokenError(Reason.KEY_MALFORMED, "kty or crv")
    if kty != KTY_EC2 or crv != CRV_P256:
        raise TokenError(Reason.KEY_WRONG_CURVE, f"kty {kty} crv {crv}")
    x, y = obj.get(KEY_X), obj.get(KEY_Y)
    if not isinstance(x, bytes) or len(x) != 32:
        raise TokenError(Reason.KEY_MALFORMED, "x")
    if isinstance(y, bool):
        point = (b"\x03" if y else b"\x02") + x
    elif isinstance(y, bytes) and len(y) == 32:
        point = b"\x04" + x + y
    else:
        raise TokenError(Reason.KEY_MALFORMED, "y")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise TokenError(Reason.KEY_MALFORMED, "point not on the curve") from None


def key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """The default kid: first 8 bytes of SHA-256 over the uncompressed point (as DCC does over
    the certificate). Verifiers never assume it is unique."""
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(point)
    return digest.finalize()[:8]
