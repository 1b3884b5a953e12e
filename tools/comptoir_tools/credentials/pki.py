"""Test PKI and simulated insurer: trust anchor, list signer, issuers, credentials, status lists.

FOR TESTS AND THE TWIN ONLY: private keys are derived from a seed and written unencrypted.

Library use (tests, twin):
    pki = TestPki(seed=1, now=t)
    wallet_credential, device_key = pki.issuers[0].activate(family(7), now=t)
    trust_list_bytes = pki.trust_list(now=t)
    status_bytes = pki.issuers[0].status_list(now=t)
Command line (wired as `comptoir pki`): see `main`.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import sys
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from comptoir.tokens import claims, cose, status, trust
from comptoir.tokens.model import Credential
from comptoir.tokens.nir import mask_nir
from comptoir_tools.credentials.identities import NIR_KINDS, Family, family

DAY = 86400
STATUS_BITS = 2
STATUS_CAPACITY_STEP = 1024  # entries


def derive_key(seed: int, label: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key determined by (seed, label): the same test PKI every run."""
    digest = hashlib.sha256(f"comptoir-test-pki:{seed}:{label}".encode()).digest()
    scalar = int.from_bytes(digest, "big") % (cose.P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def new_device_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# --- signed objects ---------------------------------------------------------------------------


def certificate(
    anchor_key: ec.EllipticCurvePrivateKey,
    *,
    subject: str,
    public_key: ec.EllipticCurvePublicKey,
    roles: int,
    not_before: int,
    not_after: int,
    kid: bytes | None = None,
    status_list: str | None = None,
) -> bytes:
    payload: dict[int, Any] = {
        claims.TYP: claims.TYP_CERTIFICATE,
        claims.NBF: not_before,
        claims.EXP: not_after,
        trust.CERT_SUBJECT: subject,
        trust.CERT_KID: kid if kid is not None else cose.key_id(public_key),
        trust.CERT_KEY: cose.encode_key(public_key, compressed=False),
        trust.CERT_ROLES: roles,
    }
    if status_list is not None:
        payload[trust.CERT_STATUS_LIST] = status_list
    header = {cose.HDR_ALG: cose.ALG_ES256, cose.HDR_KID: cose.key_id(anchor_key.public_key())}
    return cose.sign(anchor_key, header, cbor2.dumps(payload))


def trust_list(
    signer_key: ec.EllipticCurvePrivateKey,
    signer_certificate: bytes,
    entries: Iterable[bytes],
    *,
    sequence: int,
    issued_at: int,
    expires_at: int,
    grace: int,
) -> bytes:
    payload = {
        claims.TYP: claims.TYP_TRUST_LIST,
        claims.IAT: issued_at,
        claims.EXP: expires_at,
        trust.TL_SEQUENCE: sequence,
        trust.TL_GRACE: grace,
        trust.TL_ENTRIES: list(entries),
    }
    header = {
        cose.HDR_ALG: cose.ALG_ES256,
        cose.HDR_KID: cose.key_id(signer_key.public_key()),
        cose.HDR_SIGNER_CERT: signer_certificate,
    }
    return cose.sign(signer_key, header, cbor2.dumps(payload))


def pack_statuses(values: Sequence[int], bits: int = STATUS_BITS) -> bytes:
    """Token Status List bit array: entry i at bit i*bits, least significant bits first."""
    out = bytearray((len(values) * bits + 7) // 8)
    for i, v in enumerate(values):
        pos = i * bits
        out[pos >> 3] |= (v & ((1 << bits) - 1)) << (pos & 7)
    return bytes(out)


def status_list(
    key: ec.EllipticCurvePrivateKey,
    kid: bytes,
    *,
    list_id: str,
    entries: bytes,
    bits: int = STATUS_BITS,
    issued_at: int,
    expires_at: int,
    ttl: int,
) -> bytes:
    payload = {
        status.SUB: list_id,
        claims.IAT: issued_at,
        claims.EXP: expires_at,
        status.TTL: ttl,
        status.STATUS_LIST: {"bits": bits, "lst": zlib.compress(entries, 9)},
    }
    header = {cose.HDR_ALG: cose.ALG_ES256, cose.HDR_KID: kid, cose.HDR_TYP: status.TYP_STATUS_LIST}
    return cose.sign(key, header, cbor2.dumps(payload))


def sign_credential(key: ec.EllipticCurvePrivateKey, kid: bytes, payload: dict[int, Any]) -> bytes:
    return cose.sign(key, {cose.HDR_ALG: cose.ALG_ES256, cose.HDR_KID: kid}, cbor2.dumps(payload))


# --- the simulated insurer ------------------------------------------------------------------


@dataclass
class Issuer:
    """One insurer issuing key, with its status list and the activations it has made."""

    name: str
    key: ec.EllipticCurvePrivateKey
    kid: bytes
    certificate: bytes
    status_list_id: str
    statuses: bytearray = field(default_factory=bytearray)  # one status value per index
    activations: dict[str, tuple[int, int]] = field(default_factory=dict)  # NIR -> (gen, index)

    def credential(
        self,
        fam: Family,
        device_key: ec.EllipticCurvePublicKey,
        *,
        now: int,
        generation: int = 1,
        validity: int = 365 * DAY,
        status_index: int | None = None,
        credential_id: bytes | None = None,
    ) -> Credential:
        """The credential model (not signed yet): tests alter it before `sign`."""
        if status_index is None:
            status_index = len(self.statuses)
            self.statuses.append(status.VALID)
        return Credential(
            credential_id=credential_id or os.urandom(8),
            issued_at=now,
            not_before=now,
            expires_at=now + validity,
            insured=fam.insured,
            beneficiaries=fam.beneficiaries,
            affiliation=fam.affiliation,
            amc=fam.amc,
            activation_generation=generation,
            status_index=status_index,
            device_key=device_key,
        )

    def sign(self, cred: Credential, *, compressed_key: bool = True) -> bytes:
        return sign_credential(
            self.key, self.kid, claims.encode_credential(cred, compressed_key=compressed_key)
        )

    def activate(
        self, fam: Family, *, now: int, validity: int = 365 * DAY
    ) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
        """Activate the app on a (new) phone: new device key, next activation generation, and
        the previous phone's credential marked invalid on the status list."""
        device = new_device_key()
        previous = self.activations.get(fam.insured.nir)
        generation = 1 if previous is None else previous[0] + 1
        if previous is not None:
            self.statuses[previous[1]] = status.INVALID
        cred = self.credential(
            fam, device.public_key(), now=now, generation=generation, validity=validity
        )
        self.activations[fam.insured.nir] = (generation, cred.status_index)
        return self.sign(cred), device

    def set_status(self, index: int, value: int) -> None:
        self.statuses[index] = value

    def status_list(self, *, now: int, ttl: int = 3600, validity: int = DAY) -> bytes:
        # Published with spare capacity, as real lists are: a phone activated after this
        # publication still finds its index (VALID) until the next one.
        capacity = -(-(len(self.statuses) + 1) // STATUS_CAPACITY_STEP) * STATUS_CAPACITY_STEP
        values = bytes(self.statuses) + bytes(capacity - len(self.statuses))
        return status_list(
            self.key,
            self.kid,
            list_id=self.status_list_id,
            entries=pack_statuses(values),
            issued_at=now,
            expires_at=now + validity,
            ttl=ttl,
        )


class TestPki:
    """Anchor + list signer + issuers, all derived from `seed`."""

    __test__ = False  # not a pytest class

    def __init__(self, seed: int = 0, *, now: int | None = None, issuers: int = 1) -> None:
        now = int(time.time()) if now is None else now
        self.seed = seed
        self.sequence = 0
        self.anchor_key = derive_key(seed, "anchor")
        self.list_signer_key = derive_key(seed, "list-signer")
        self.not_before = now - 30 * DAY
        self.not_after = now + 3 * 365 * DAY
        self.list_signer_certificate = certificate(
            self.anchor_key,
            subject="Comptoir test trust-list signer",
            public_key=self.list_signer_key.public_key(),
            roles=trust.ROLE_SIGN_TRUST_LISTS,
            not_before=self.not_before,
            not_after=self.not_after,
        )
        self.issuers = [self.new_issuer(f"CPAM TEST {i + 1}") for i in range(issuers)]

    @property
    def anchor(self) -> ec.EllipticCurvePublicKey:
        return self.anchor_key.public_key()

    def rotate_list_signer(self, label: str) -> None:
        """A new trust-list signing key (and its certificate under the anchor) from now on."""
        self.list_signer_key = derive_key(self.seed, f"list-signer:{label}")
        self.list_signer_certificate = certificate(
            self.anchor_key,
            subject=f"Comptoir test trust-list signer {label}",
            public_key=self.list_signer_key.public_key(),
            roles=trust.ROLE_SIGN_TRUST_LISTS,
            not_before=self.not_before,
            not_after=self.not_after,
        )

    def rotate_issuer(self, name: str) -> Issuer:
        """A new issuing key: its certificate joins the trust list (the old issuer stays on it
        for the credentials it signed) and new activations use it (issuers[-1])."""
        issuer = self.new_issuer(name)
        self.issuers.append(issuer)
        return issuer

    def new_issuer(
        self, name: str, *, roles: int | None = None, kid: bytes | None = None
    ) -> Issuer:
        key = derive_key(self.seed, f"issuer:{name}")
        kid = kid or cose.key_id(key.public_key())
        list_id = f"https://status.test.invalid/{kid.hex()}"
        cert = certificate(
            self.anchor_key,
            subject=name,
            public_key=key.public_key(),
            roles=(trust.ROLE_ISSUE_CREDENTIALS | trust.ROLE_SIGN_STATUS_LISTS)
            if roles is None
            else roles,
            not_before=self.not_before,
            not_after=self.not_after,
            kid=kid,
            status_list=list_id,
        )
        return Issuer(name, key, kid, cert, list_id)

    def trust_list(
        self,
        *,
        now: int,
        validity: int = DAY,
        grace: int = 3 * DAY,
        entries: Iterable[bytes] | None = None,
        sequence: int | None = None,
    ) -> bytes:
        if sequence is None:
            self.sequence += 1
            sequence = self.sequence
        return trust_list(
            self.list_signer_key,
            self.list_signer_certificate,
            [i.certificate for i in self.issuers] if entries is None else entries,
            sequence=sequence,
            issued_at=now,
            expires_at=now + validity,
            grace=grace,
        )


# --- command line ---------------------------------------------------------------------------


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _unpem(text: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(text.encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def save_state(pki: TestPki, directory: Path) -> None:
    state = {
        "seed": pki.seed,
        "sequence": pki.sequence,
        "not_before": pki.not_before,
        "not_after": pki.not_after,
        "issuers": [
            {
                "name": i.name,
                "kid": i.kid.hex(),
                "certificate": _b64(i.certificate),
                "status_list_id": i.status_list_id,
                "statuses": _b64(bytes(i.statuses)),
                "activations": {nir: list(v) for nir, v in i.activations.items()},
            }
            for i in pki.issuers
        ],
    }
    path = directory / "pki-state.json"
    path.write_text(json.dumps(state, indent=1))
    path.chmod(0o600)


def load_state(directory: Path) -> TestPki:
    state = json.loads((directory / "pki-state.json").read_text())
    pki = TestPki(state["seed"], now=state["not_before"] + 30 * DAY, issuers=0)
    pki.sequence = state["sequence"]
    for s in state["issuers"]:
        issuer = pki.new_issuer(s["name"], kid=bytes.fromhex(s["kid"]))
        issuer = replace(
            issuer,
            certificate=base64.b64decode(s["certificate"]),
            statuses=bytearray(base64.b64decode(s["statuses"])),
            activations={nir: (v[0], v[1]) for nir, v in s["activations"].items()},
        )
        pki.issuers.append(issuer)
    return pki


def publication_index(issuers: int) -> dict[str, Any]:
    """index.json of a publication: the files a host fetches (comptoir.tokens.refresh)."""
    return {"trust_list": "trust-list.cbor",
            "status_lists": [f"status-{n}.cbor" for n in range(1, issuers + 1)]}


def publish(pki: TestPki, directory: Path, now: int, validity: int, grace: int) -> list[Path]:
    """Write what a verifier needs: anchor.pem, trust-list.cbor, status-<n>.cbor."""
    written = [directory / "anchor.pem", directory / "trust-list.cbor"]
    written[0].write_bytes(
        pki.anchor.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    written[1].write_bytes(pki.trust_list(now=now, validity=validity, grace=grace))
    for n, issuer in enumerate(pki.issuers, 1):
        path = directory / f"status-{n}.cbor"
        path.write_bytes(issuer.status_list(now=now, validity=validity))
        written.append(path)
    (directory / "index.json").write_text(json.dumps(publication_index(len(pki.issuers))))
    save_state(pki, directory)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="comptoir pki", description="Test PKI and simulated insurer (tests and twin only)."
    )
    parser.add_argument("--now", type=int, default=None, help="Unix time to use (default: now)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="create anchor, list signer and issuers; publish")
    p.add_argument("directory", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--issuers", type=int, default=1)
    p.add_argument("--validity", type=int, default=DAY, help="trust/status list validity (s)")
    p.add_argument("--grace", type=int, default=3 * DAY, help="trust list offline grace (s)")
    p = sub.add_parser("issue", help="activate a generated family's app on a new phone")
    p.add_argument("directory", type=Path)
    p.add_argument("--family-seed", type=int, required=True)
    p.add_argument("--beneficiaries", type=int, default=None)
    p.add_argument("--nir-kind", choices=NIR_KINDS, default=None)
    p.add_argument("--issuer", type=int, default=1, help="issuer number (1-based)")
    p.add_argument("--wallet", type=Path, required=True, help="wallet file to write")
    p = sub.add_parser("status-list", help="change statuses and republish the status lists")
    p.add_argument("directory", type=Path)
    p.add_argument("--issuer", type=int, default=1)
    p.add_argument("--revoke", type=int, action="append", default=[], metavar="INDEX")
    p.add_argument("--suspend", type=int, action="append", default=[], metavar="INDEX")
    p.add_argument("--validity", type=int, default=DAY)
    p = sub.add_parser("trust-list", help="republish the trust list (next sequence number)")
    p.add_argument("directory", type=Path)
    p.add_argument("--validity", type=int, default=DAY)
    p.add_argument("--grace", type=int, default=3 * DAY)
    args = parser.parse_args(argv)
    now = int(time.time()) if args.now is None else args.now

    from comptoir_tools.credentials.wallet import Wallet  # the wallet imports this module

    if args.command == "init":
        args.directory.mkdir(parents=True, exist_ok=True)
        pki = TestPki(args.seed, now=now, issuers=args.issuers)
        for path in publish(pki, args.directory, now, args.validity, args.grace):
            print(path)
        return 0
    pki = load_state(args.directory)
    if args.command == "issue":
        issuer = pki.issuers[args.issuer - 1]
        fam = family(
            args.family_seed,
            beneficiaries=args.beneficiaries,
            nir_kind=args.nir_kind,
            today=dt.datetime.fromtimestamp(now, dt.UTC).date(),
        )
        credential, device = issuer.activate(fam, now=now)
        Wallet(credential, device).save(args.wallet)
        save_state(pki, args.directory)
        gen = issuer.activations[fam.insured.nir][0]
        print(
            f"{args.wallet}: insured {mask_nir(fam.insured.nir)}, "
            f"{len(fam.beneficiaries)} beneficiaries, activation generation {gen}"
        )
        return 0
    if args.command == "status-list":
        issuer = pki.issuers[args.issuer - 1]
        for index in args.revoke:
            issuer.set_status(index, status.INVALID)
        for index in args.suspend:
            issuer.set_status(index, status.SUSPENDED)
        path = args.directory / f"status-{args.issuer}.cbor"
        path.write_bytes(issuer.status_list(now=now, validity=args.validity))
        save_state(pki, args.directory)
        print(path)
        return 0
    if args.command == "trust-list":
        path = args.directory / "trust-list.cbor"
        path.write_bytes(pki.trust_list(now=now, validity=args.validity, grace=args.grace))
        save_state(pki, args.directory)
        print(path)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
