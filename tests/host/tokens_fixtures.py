"""A complete token world for tests: test PKI, trust store, status lists, verifier state on
disk, challenge registry and verifier, at a fixed clock; plus helpers to forge tokens."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec

from comptoir.tokens import claims, cose
from comptoir.tokens.challenges import ChallengeRegistry
from comptoir.tokens.model import Credential
from comptoir.tokens.replay import VerifierState
from comptoir.tokens.status import StatusLists
from comptoir.tokens.trust import TrustStore
from comptoir.tokens.verify import Policy, Verifier, decode_qr, encode_qr
from comptoir_tools.credentials.identities import Family, family
from comptoir_tools.credentials.pki import TestPki, new_device_key
from comptoir_tools.credentials.wallet import Wallet

NOW = 1_790_000_000  # 2026-09-21, a fixed clock for every test
TODAY = dt.datetime.fromtimestamp(NOW, dt.UTC).date()
PEPPER = b"test-pepper-0123456789abcdef0123"
BOARD = "board-A"


class World:
    def __init__(self, directory: Path, *, seed: int = 1, policy: Policy | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.pki = TestPki(seed, now=NOW)
        self.issuer = self.pki.issuers[0]
        self.policy = policy or Policy()
        self.trust = TrustStore([self.pki.anchor])
        self.trust.load(self.pki.trust_list(now=NOW), NOW)
        self.status = StatusLists(self.trust)
        self.challenges = ChallengeRegistry()
        self.restart()

    def restart(self) -> None:
        """A new daemon process: state reopened from disk, challenges forgotten."""
        if hasattr(self, "state"):
            self.state.close()
        self.state = VerifierState(self.directory / "state.db", pepper=PEPPER)
        self.challenges = ChallengeRegistry()
        self.verifier = Verifier(self.trust, self.status, self.state, self.challenges, self.policy)

    def publish_status(self, now: int = NOW) -> None:
        # Only a strictly newer list replaces the held one: each publication a second later.
        self._status_iat = max(now, getattr(self, "_status_iat", 0) + 1)
        self.status.load(self.issuer.status_list(now=self._status_iat), self._status_iat)

    def family(self, seed: int = 7, beneficiaries: int = 2, **kw: Any) -> Family:
        return family(seed, beneficiaries=beneficiaries, today=TODAY, **kw)

    def wallet(self, fam: Family | None = None, *, issued: int = NOW - 3600) -> Wallet:
        """A freshly activated phone; the status list is republished to include it."""
        credential, device = self.issuer.activate(fam or self.family(), now=issued)
        self.publish_status()
        return Wallet(credential, device)

    def custom_wallet(
        self,
        cred: Credential | None = None,
        *,
        payload: dict | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
        kid: bytes | None = None,
        device: ec.EllipticCurvePrivateKey | None = None,
        **changes: Any,
    ) -> Wallet:
        """A phone whose credential the issuer signed with `changes` (or a raw `payload`,
        whose cnf should then hold `device`'s public key)."""
        device = device or new_device_key()
        if cred is None:
            cred = self.issuer.credential(self.family(), device.public_key(), now=NOW - 3600)
        cred = dataclasses.replace(cred, device_key=device.public_key(), **changes)
        if payload is None:
            payload = claims.encode_credential(cred)
        credential = cose.sign(
            key or self.issuer.key,
            {cose.HDR_ALG: cose.ALG_ES256, cose.HDR_KID: kid or self.issuer.kid},
            cbor2.dumps(payload),
        )
        self.publish_status()
        return Wallet(credential, device)

    def qr(self, text: str, now: int = NOW):
        return self.verifier.verify_qr(text, now=now)

    def nfc(self, data: bytes, board: str = BOARD, now: int = NOW):
        return self.verifier.verify_nfc(data, board, now=now)


def sign1_parts(token: bytes) -> list[Any]:
    """[protected, unprotected, payload, signature] of a tagged COSE_Sign1."""
    obj = cbor2.loads(token)
    assert isinstance(obj, cbor2.CBORTag) and obj.tag == 18
    return list(obj.value)


def build_sign1(parts: list[Any], tag: bool = True) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(18, parts) if tag else parts)


def resign(
    key: ec.EllipticCurvePrivateKey,
    protected: dict,
    payload: bytes,
    unprotected: dict | None = None,
) -> bytes:
    """Sign like cose.sign, but allowing any header content (for forgeries)."""
    token = cose.sign(key, protected, payload)
    parts = sign1_parts(token)
    parts[1] = unprotected or {}
    return build_sign1(parts)


def presentation_claims(wallet: Wallet, text_or_bytes: str | bytes) -> dict:
    data = decode_qr(text_or_bytes) if isinstance(text_or_bytes, str) else text_or_bytes
    return cbor2.loads(sign1_parts(data)[2])


def present_raw(wallet: Wallet, payload: bytes, protected: dict | None = None) -> bytes:
    """A presentation of arbitrary payload bytes, signed by the wallet's device key."""
    return cose.sign(wallet.device_key, protected or {cose.HDR_ALG: cose.ALG_ES256}, payload)


def present_claims(wallet: Wallet, **changes: Any) -> bytes:
    """A QR presentation with some claims replaced (or removed when None), device-signed."""
    wallet.counter += 1
    payload = claims.encode_presentation(
        wallet.credential, NOW, b"\x01" * 8 + bytes([wallet.counter % 256]), wallet.counter, None
    )
    for key, value in changes.items():
        k = getattr(claims, key)
        if value is None:
            payload.pop(k, None)
        else:
            payload[k] = value
    return present_raw(wallet, cbor2.dumps(payload))


__all__ = ["BOARD", "NOW", "TODAY", "World", "encode_qr"]
