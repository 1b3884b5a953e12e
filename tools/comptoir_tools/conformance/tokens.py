"""Conformance vectors for Comptoir's open formats (issue 19).

    comptoir conformance generate --out conformance/     write every vector (deterministic)
    comptoir conformance check conformance/               run ours against them

Tokens (`conformance/tokens/*.json`, schema `comptoir-token-vector/1`): one case per file, the
trust material (anchor, trust lists, status lists, each with the clock it is loaded at and
what loading must give), then steps: a QR text, or an NFC transcript (the host's challenge,
the APDUs as the phone answers them, the reassembled presentation) with the expected verdict:
`accepted` (with what was read) or `refused` with the reason (docs/tokens.md §8).
Link (`conformance/link/*.json`): see `comptoir_tools.conformance.link`.

Everything is deterministic: the test PKI's keys come from a seed, device keys from labels,
ids and nonces from hashes, and signatures are deterministic ECDSA (RFC 6979) while
generating, so the same code writes the same bytes (a test regenerates and compares).
How an implementer runs the vectors: docs/conformance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from comptoir.tokens import claims, cose, status
from comptoir.tokens.challenges import ChallengeRegistry
from comptoir.tokens.model import Verified
from comptoir.tokens.nir import with_key
from comptoir.tokens.reasons import Reason, TokenError
from comptoir.tokens.replay import VerifierState
from comptoir.tokens.status import StatusLists
from comptoir.tokens.trust import (
    ROLE_SIGN_STATUS_LISTS,
    ROLE_SIGN_TRUST_LISTS,
    TrustStore,
)
from comptoir.tokens.verify import Policy, Verifier, decode_qr, encode_qr
from comptoir_tools.credentials import pki as pki_tools
from comptoir_tools.credentials.identities import NIR_KINDS, family
from comptoir_tools.credentials.pki import DAY, TestPki, derive_key
from comptoir_tools.credentials.wallet import Wallet
from comptoir_tools.simulators.phone import COMPTOIR_AID, Phone

TOKEN_SCHEMA = "comptoir-token-vector/1"
NOW = 1_790_000_000  # 2026-09-21T13:33:20Z, the clock of every case unless a step says
TODAY = dt.datetime.fromtimestamp(NOW, dt.UTC).date()
SEED = 19
BOARD = "board-A"
PEPPER = b"conformance-pepper-0123456789abc"  # the runner's; vectors never depend on it

# Reasons no vector can produce, and why (a test fails if any other reason has no vector).
UNREACHABLE = {
    Reason.INTERNAL_ERROR: "a bug or a failed journal write on the host; no input causes it",
    Reason.STATE_UNAVAILABLE: "the shared PostgreSQL state is unreachable; no input causes it",
}


# --- deterministic generation -------------------------------------------------------------------


@contextlib.contextmanager
def deterministic_signatures() -> Iterator[None]:
    """cose.sign with RFC 6979 nonces: the same key and message give the same signature."""
    saved = cose._ECDSA_SHA256
    cose._ECDSA_SHA256 = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    try:
        yield
    finally:
        cose._ECDSA_SHA256 = saved


def _bytes(label: str, n: int) -> bytes:
    return hashlib.sha256(f"comptoir-conformance:{label}".encode()).digest()[:n]


def _p384_key(label: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha384(label.encode()).digest(), "big") % (2**383) + 1
    return ec.derive_private_key(scalar, ec.SECP384R1())


def _pem(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _point(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    ).hex()


def nfc_transcript(presentation: bytes, challenge: bytes) -> list[list[str]]:
    """The APDUs of one tap (docs/nfc.md §1) as the simulated phone answers them: SELECT,
    PRESENT with the challenge, GET RESPONSE until 90 00. [[command hex, answer hex], ...]"""
    phone = Phone(lambda _challenge: presentation)
    out = []

    def ask(cmd: bytes) -> bytes:
        answer = phone.process_apdu(cmd)
        out.append([cmd.hex(), answer.hex()])
        return answer

    ask(b"\x00\xa4\x04\x00" + bytes([len(COMPTOIR_AID)]) + COMPTOIR_AID + b"\x00")
    answer = ask(b"\x80\x50\x00\x00\x10" + challenge + b"\xf0")
    while answer[-2] == 0x61:
        left = answer[-1]
        ask(b"\x00\xc0\x00\x00" + bytes([left if 0 < left <= 240 else 240]))
        answer = bytes.fromhex(out[-1][1])
    return out


def reassemble(transcript: list[list[str]]) -> bytes:
    """The presentation an NFC transcript carries: the data of every answer after SELECT."""
    data = b""
    for _cmd, answer in transcript[1:]:
        raw = bytes.fromhex(answer)
        if raw[-2] not in (0x61, 0x90):
            raise ValueError(f"status word {raw[-2:].hex()}")
        data += raw[:-2]
    return data


class Case:
    """One vector being written: steps are run against our verifier as they are added, and
    the outcome must be the one the case intends (generation fails otherwise)."""

    def __init__(self, name: str, description: str, policy: Policy | None = None) -> None:
        self.name = name
        self.description = description
        self.policy = policy or Policy()
        self.steps: list[dict[str, Any]] = []
        self.anchors: list[ec.EllipticCurvePublicKey] = []
        self._runner: Runner | None = None

    def start(self, anchors: list[ec.EllipticCurvePublicKey], directory: Path) -> None:
        self.anchors = anchors
        self._runner = Runner(self.document(), directory)

    def _add(self, step: dict[str, Any]) -> None:
        assert self._runner is not None
        got = self._runner.step(step)
        want = step["expect"]
        if want is ACCEPTED and isinstance(got, dict) and got.get("verdict") == "accepted":
            step["expect"] = want = got  # what was read is recorded as the expectation
        if got != want:
            raise AssertionError(f"{self.name} step {len(self.steps)}: got {got}, want {want}")
        self.steps.append(step)

    def load_trust_list(self, data: bytes, now: int = NOW, expect: str = "loaded") -> None:
        self._add({"op": "load_trust_list", "now": now, "data": data.hex(), "expect": expect})

    def load_status_list(self, data: bytes, now: int = NOW, expect: str = "loaded") -> None:
        self._add({"op": "load_status_list", "now": now, "data": data.hex(), "expect": expect})

    def issue_challenge(self, challenge: bytes, now: int = NOW, board: str = BOARD) -> None:
        self._add({"op": "issue_challenge", "now": now, "board": board,
                   "challenge": challenge.hex(), "expect": "issued"})

    def qr(self, text: str, expect: dict[str, Any], now: int = NOW) -> None:
        self._add({"op": "verify_qr", "now": now, "qr": text, "expect": expect})

    def nfc(self, data: bytes, expect: dict[str, Any], now: int = NOW, board: str = BOARD,
            challenge: bytes | None = None) -> None:
        step: dict[str, Any] = {"op": "verify_nfc", "now": now, "board": board,
                                "presentation": data.hex(), "expect": expect}
        if challenge is not None:
            step["apdus"] = nfc_transcript(data, challenge)
        self._add(step)

    def document(self) -> dict[str, Any]:
        return {
            "schema": TOKEN_SCHEMA,
            "name": self.name,
            "description": self.description,
            "anchors": [{"pem": _pem(a), "point": _point(a)} for a in self.anchors],
            "policy": {
                "clock_skew": self.policy.clock_skew,
                "qr_max_age": self.policy.qr_max_age,
                "nfc_max_age": self.policy.nfc_max_age,
                "trust_list_max_grace": 7 * DAY,
                "status_list_grace": 3 * DAY,
                "challenge_ttl": 30,
            },
            "steps": self.steps,
        }


ACCEPTED: dict[str, Any] = {"verdict": "accepted"}  # marker: filled in with what was read


def refused(reason: Reason) -> dict[str, Any]:
    return {"verdict": "refused", "reason": reason.value}


def accepted_summary(result: Verified) -> dict[str, Any]:
    """What an accepted verdict must have read (compared in full by the runner)."""
    cred = result.credential
    return {
        "verdict": "accepted",
        "channel": str(result.channel),
        "warnings": list(result.warnings),
        "issuer": result.issuer,
        "credential_id": cred.credential_id.hex(),
        "presentation_id": result.presentation_id.hex(),
        "counter": result.counter,
        "activation_generation": cred.activation_generation,
        "insured": {
            "nir": cred.insured.nir,
            "family_name": cred.insured.family_name,
            "given_names": cred.insured.given_names,
            "birth_date": cred.insured.birth_date.to_int(),
        },
        "beneficiaries": [
            {"rank": b.rank, "given_names": b.given_names, "family_name": b.family_name,
             "birth_date": b.birth_date.to_int(), "birth_rank": b.birth_rank,
             "quality": b.quality}
            for b in cred.beneficiaries
        ],
    }


# --- the runner: our implementation against one vector ------------------------------------------


class Runner:
    """Run a token vector's steps against comptoir.tokens. `step()` returns the outcome in the
    vector's own terms, so that a vector passes when every step's outcome equals `expect`."""

    def __init__(self, doc: dict[str, Any], directory: Path) -> None:
        anchors = [
            serialization.load_pem_public_key(a["pem"].encode()) for a in doc["anchors"]
        ]
        pol = doc["policy"]
        policy = Policy(pol["clock_skew"], pol["qr_max_age"], pol["nfc_max_age"])
        self.trust = TrustStore(anchors, max_grace=pol["trust_list_max_grace"],  # type: ignore[arg-type]
                                clock_skew=pol["clock_skew"])
        self.status = StatusLists(self.trust, grace=pol["status_list_grace"],
                                  clock_skew=pol["clock_skew"])
        self._next_challenge = b""
        self.challenges = ChallengeRegistry(ttl=pol["challenge_ttl"],
                                            rng=lambda n: self._next_challenge)
        directory.mkdir(parents=True, exist_ok=True)
        self.state = VerifierState(directory / "verifier.journal", pepper=PEPPER)
        self.verifier = Verifier(self.trust, self.status, self.state, self.challenges, policy)

    def close(self) -> None:
        self.state.close()

    def step(self, step: dict[str, Any]) -> Any:
        op, now = step["op"], step["now"]
        if op in ("load_trust_list", "load_status_list"):
            data = bytes.fromhex(step["data"])
            try:
                if op == "load_trust_list":
                    self.trust.load(data, now)
                else:
                    self.status.load(data, now)
            except TokenError as exc:
                return exc.reason.value
            return "loaded"
        if op == "issue_challenge":
            self._next_challenge = bytes.fromhex(step["challenge"])
            self.challenges.issue(step["board"], now)
            return "issued"
        if op == "verify_qr":
            result = self.verifier.verify_qr(step["qr"], now=now)
        elif op == "verify_nfc":
            data = bytes.fromhex(step["presentation"])
            if "apdus" in step and reassemble(step["apdus"]) != data:
                return "transcript does not carry the presentation"
            result = self.verifier.verify_nfc(data, step["board"], now=now)
        else:
            raise ValueError(f"unknown op {op!r}")
        if isinstance(result, Verified):
            return accepted_summary(result)
        return refused(result.reason)


def run_token_vector(doc: dict[str, Any]) -> list[str]:
    """Run one vector; the list of mismatches (empty: it passes)."""
    if doc.get("schema") != TOKEN_SCHEMA:
        return [f"schema {doc.get('schema')!r}"]
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(doc, Path(tmp))
        try:
            for i, step in enumerate(doc["steps"]):
                got = runner.step(step)
                if got != step["expect"]:
                    problems.append(f"step {i} ({step['op']}): got {got}, expected "
                                    f"{step['expect']}")
        finally:
            runner.close()
    return problems


# --- the world each case starts from ------------------------------------------------------------


class World:
    """The test insurer of every case (seed 19): an anchor, a list signer, one issuer."""

    def __init__(self, case: Case, directory: Path) -> None:
        self.case = case
        self.pki = TestPki(SEED, now=NOW)
        self.issuer = self.pki.issuers[0]
        self.trust_list = self.pki.trust_list(now=NOW - 3600, validity=2 * DAY, grace=3 * DAY)
        self._n = 0
        case.start([self.pki.anchor], directory)

    def device(self, label: str = "phone") -> ec.EllipticCurvePrivateKey:
        return derive_key(SEED, f"device:{self.case.name}:{label}")

    def family(self, seed: int = 7, beneficiaries: int = 1, **kw: Any):
        return family(seed, beneficiaries=beneficiaries, today=TODAY, **kw)

    def credential_claims(self, label: str = "phone", *, fam=None, status_value: int = 0,
                          device: ec.EllipticCurvePrivateKey | None = None,
                          **changes: Any) -> tuple[dict, ec.EllipticCurvePrivateKey]:
        device = device or self.device(label)
        index = None if "status_index" in changes else len(self.issuer.statuses)
        cred = self.issuer.credential(
            fam or self.family(), device.public_key(), now=NOW - 3600,
            credential_id=_bytes(f"{self.case.name}:cti:{label}", 8),
            status_index=changes.pop("status_index", None),
        )
        if index is not None:
            self.issuer.statuses[index] = status_value
        cred = dataclasses.replace(cred, **changes)
        return claims.encode_credential(cred), device

    def wallet(self, label: str = "phone", *, payload: dict | None = None,
               key: ec.EllipticCurvePrivateKey | None = None, kid: bytes | None = None,
               device: ec.EllipticCurvePrivateKey | None = None, **changes: Any) -> Wallet:
        if payload is None:
            payload, device = self.credential_claims(label, device=device, **changes)
        device = device or self.device(label)
        credential = pki_tools.sign_credential(key or self.issuer.key, kid or self.issuer.kid,
                                               payload)
        return self.phone(credential, device, label)

    def phone(self, credential: bytes, device: ec.EllipticCurvePrivateKey, label: str) -> Wallet:
        """A wallet whose presentation ids are deterministic."""
        counter = [0]

        def rng(n: int) -> bytes:
            counter[0] += 1
            return _bytes(f"{self.case.name}:{label}:pcti:{counter[0]}", n)

        return Wallet(credential, device, rng=rng)

    def load(self, *, status_iat: int = NOW - 60) -> None:
        """The usual trust material: the trust list, then the issuer's status list."""
        self.case.load_trust_list(self.trust_list)
        self.case.load_status_list(self.issuer.status_list(now=status_iat))


def present_raw(wallet: Wallet, payload: bytes, protected: dict | None = None,
                unprotected: dict | None = None) -> bytes:
    """A device-signed COSE_Sign1 over any payload bytes (for malformed presentations)."""
    token = cose.sign(wallet.device_key, protected or {cose.HDR_ALG: cose.ALG_ES256}, payload)
    if unprotected:
        parts = list(cbor2.loads(token).value)
        parts[1] = unprotected
        token = cbor2.dumps(cbor2.CBORTag(18, parts))
    return token


def sign1_parts(token: bytes) -> list[Any]:
    return list(cbor2.loads(token).value)


def _pres(wallet: Wallet, **changes: Any) -> dict:
    wallet.counter += 1
    payload = claims.encode_presentation(wallet.credential, NOW, _bytes(f"p{wallet.counter}", 8),
                                         wallet.counter, None)
    for key, value in changes.items():
        payload[getattr(claims, key)] = value
    return payload


# --- the cases ----------------------------------------------------------------------------------

CASES: list[tuple[str, str, Callable[[World], None], Policy | None]] = []


def case(name: str, description: str, policy: Policy | None = None):
    def register(fn: Callable[[World], None]) -> Callable[[World], None]:
        CASES.append((name, description, fn, policy))
        return fn

    return register


def ok(w: World, text_or_data: str | bytes, now: int = NOW, challenge: bytes | None = None,
       board: str = BOARD) -> None:
    if isinstance(text_or_data, str):
        w.case.qr(text_or_data, ACCEPTED, now)
    else:
        w.case.nfc(text_or_data, ACCEPTED, now, board, challenge)


def no(w: World, text_or_data: str | bytes, reason: Reason, now: int = NOW,
       challenge: bytes | None = None, board: str = BOARD) -> None:
    if isinstance(text_or_data, str):
        w.case.qr(text_or_data, refused(reason), now)
    else:
        w.case.nfc(text_or_data, refused(reason), now, board, challenge)


def challenge_for(w: World, label: str = "c1") -> bytes:
    return _bytes(f"{w.case.name}:challenge:{label}", 16)


# Accepted.


@case("accept-qr-1-beneficiary", "A QR presentation of a credential with one beneficiary and an "
      "AMC contract, everything current: accepted, with the people it names.")
def _(w: World) -> None:
    w.load()
    ok(w, w.wallet(fam=w.family(7, 1, amc=True)).present_qr(now=NOW - 5))


@case("accept-qr-0-beneficiaries", "No beneficiary: key -6 is absent.")
def _(w: World) -> None:
    w.load()
    ok(w, w.wallet(fam=w.family(8, 0)).present_qr(now=NOW))


@case("accept-qr-5-beneficiaries", "Five beneficiaries, some with their own family name.")
def _(w: World) -> None:
    w.load()
    ok(w, w.wallet(fam=w.family(9, 5)).present_qr(now=NOW))


for _kind in NIR_KINDS:
    @case(f"accept-qr-nir-{_kind.replace('_', '-')}", f"A NIR of kind {_kind} (docs/tokens.md "
          "§6).")
    def _(w: World, kind: str = _kind) -> None:
        w.load()
        ok(w, w.wallet(fam=w.family(11, 1, nir_kind=kind)).present_qr(now=NOW))


@case("accept-nfc", "An NFC tap: the host issues a challenge to the board, the phone signs it "
      "into the presentation, read over SELECT / PRESENT / GET RESPONSE.")
def _(w: World) -> None:
    w.load()
    c = challenge_for(w)
    w.case.issue_challenge(c)
    ok(w, w.wallet().present_nfc(c, now=NOW - 2), challenge=c)


@case("accept-qr-twice-new-presentation", "The same phone shows a second, new QR presentation "
      "(new cti, counter + 1): both accepted.")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet()
    ok(w, wallet.present_qr(now=NOW))
    ok(w, wallet.present_qr(now=NOW + 10), NOW + 10)


@case("accept-qr-high-s", "The presentation's signature with s replaced by n - s (high S): "
      "ECDSA accepts both, and so does Comptoir (replay is keyed by cti).")
def _(w: World) -> None:
    w.load()
    parts = sign1_parts(decode_qr(w.wallet().present_qr(now=NOW)))
    sig = parts[3]
    s = int.from_bytes(sig[32:], "big")
    parts[3] = sig[:32] + (cose.P256_ORDER - s).to_bytes(32, "big")
    ok(w, encode_qr(cbor2.dumps(cbor2.CBORTag(18, parts))))


@case("accept-qr-within-clock-skew", "Presented 60 s in the future (the skew): accepted; a "
      "credential expired 60 s ago: accepted.")
def _(w: World) -> None:
    w.load()
    ok(w, w.wallet("a").present_qr(now=NOW + 60))
    ok(w, w.wallet("b", expires_at=NOW - 60).present_qr(now=NOW))


@case("accept-qr-trust-list-in-grace", "The trust list expired but is within its grace period: "
      "accepted with the warning trust_list_in_grace.")
def _(w: World) -> None:
    w.case.load_trust_list(w.pki.trust_list(now=NOW - DAY - 100, validity=DAY, grace=3600))
    w.case.load_status_list(w.issuer.status_list(now=NOW - 60))
    wallet = w.wallet()
    w.case.load_status_list(w.issuer.status_list(now=NOW - 30))
    ok(w, wallet.present_qr(now=NOW))


@case("accept-qr-name-64-bytes", "A given name of 32 x 'É': 32 characters, 64 bytes of UTF-8, "
      "the most `tstr .size (1..64)` allows.")
def _(w: World) -> None:
    fam = w.family()
    ins = dataclasses.replace(fam.insured, given_names="É" * 32)
    wallet = w.wallet(insured=ins)
    w.load()
    ok(w, wallet.present_qr(now=NOW))


@case("accept-status-lists-only-strictly-newer", "A status list signed in the same second as the "
      "held one is not taken (status_list_invalid): the phone deactivated by the held list "
      "stays refused, its valid sibling accepted.")
def _(w: World) -> None:
    good = w.wallet("good")
    gone = w.wallet("gone")
    w.case.load_trust_list(w.trust_list)
    older = w.issuer.status_list(now=NOW - 60)
    w.issuer.set_status(1, status.INVALID)
    newer = w.issuer.status_list(now=NOW - 60)
    w.case.load_status_list(newer)
    w.case.load_status_list(older, expect=Reason.STATUS_LIST_INVALID.value)
    no(w, gone.present_qr(now=NOW), Reason.CREDENTIAL_REVOKED)
    ok(w, good.present_qr(now=NOW))


# Transport and hostile input.


@case("refuse-input-too-large", "A QR text longer than 3076 characters, and an NFC presentation "
      "over 2048 bytes.")
def _(w: World) -> None:
    w.load()
    no(w, "CV1:" + "0" * 3073, Reason.INPUT_TOO_LARGE)
    no(w, b"\xd2\x84" + b"\x00" * 2047, Reason.INPUT_TOO_LARGE)


@case("refuse-qr-bad-prefix", "QR texts without the `CV1:` prefix (another prefix, lower case).")
def _(w: World) -> None:
    w.load()
    text = w.wallet().present_qr(now=NOW)
    no(w, "HC1:" + text[4:], Reason.QR_BAD_PREFIX)
    no(w, text.lower(), Reason.QR_BAD_PREFIX)


@case("refuse-qr-bad-base45", "base45 in lower case, a length of 1 mod 3, a group over 65535.")
def _(w: World) -> None:
    w.load()
    text = w.wallet().present_qr(now=NOW)
    no(w, text[:4] + text[4:].lower(), Reason.QR_BAD_BASE45)
    no(w, text + "0", Reason.QR_BAD_BASE45)
    no(w, "CV1:GGW", Reason.QR_BAD_BASE45)


@case("refuse-cbor-truncated", "A presentation cut short, over NFC and in a QR.")
def _(w: World) -> None:
    w.load()
    data = w.wallet().presentation(now=NOW)
    no(w, data[: len(data) // 2], Reason.CBOR_TRUNCATED)
    no(w, encode_qr(data[:-1]), Reason.CBOR_TRUNCATED)


@case("refuse-cbor-malformed", "A stray break byte; a reserved additional-information value; "
      "invalid UTF-8 in a text string of the signed claims.")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet()
    no(w, b"\xff", Reason.CBOR_MALFORMED)
    no(w, b"\xd2\x84\x1c", Reason.CBOR_MALFORMED)
    payload = cbor2.dumps(_pres(wallet))
    bad = b"\xa6" + payload[1:] + b"\x3a\x00\x01\x00\x00\x62\xc3\x28"  # -65537: invalid UTF-8
    no(w, present_raw(wallet, bad), Reason.CBOR_MALFORMED)


@case("refuse-cbor-too-deep", "1000 nested arrays; nesting too deep inside the signed payload.")
def _(w: World) -> None:
    w.load()
    no(w, b"\xd2" + b"\x81" * 1000 + b"\x00", Reason.CBOR_TOO_DEEP)
    no(w, present_raw(w.wallet(), b"\xa1\x01" + b"\x81" * 50 + b"\x00"), Reason.CBOR_TOO_DEEP)


@case("refuse-cbor-too-many-items", "A COSE_Sign1 array of 5 elements (an envelope container "
      "holds at most 4); presentation claims with 9 entries.")
def _(w: World) -> None:
    w.load()
    no(w, b"\xd2\x85\x01\x02\x03\x04\x05", Reason.CBOR_TOO_MANY_ITEMS)
    wallet = w.wallet()
    payload = _pres(wallet)
    payload.update({-10: 0, -11: 0, -12: 0, -13: 0})
    no(w, present_raw(wallet, cbor2.dumps(payload)), Reason.CBOR_TOO_MANY_ITEMS)


@case("refuse-cbor-indefinite-length", "The COSE_Sign1 array with an indefinite length.")
def _(w: World) -> None:
    w.load()
    parts = sign1_parts(w.wallet().presentation(now=NOW))
    no(w, b"\xd2\x9f" + b"".join(cbor2.dumps(p) for p in parts) + b"\xff",
       Reason.CBOR_INDEFINITE_LENGTH)


@case("refuse-cbor-non-minimal", "typ encoded as 18 02 instead of 02 in the signed claims.")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet()
    payload = cbor2.dumps({claims.TYP: claims.TYP_PRESENTATION})[:-1] + b"\x18\x02"
    no(w, present_raw(wallet, payload), Reason.CBOR_NON_MINIMAL)


@case("refuse-cbor-duplicate-key", "Presentation claims with the credential key twice (a parser "
      "keeping the last one would see another credential).")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet("a")
    other = w.wallet("b", fam=w.family(99))
    encoded = cbor2.dumps(_pres(wallet))
    payload = b"\xa6" + encoded[1:] + cbor2.dumps(claims.PR_CREDENTIAL) + cbor2.dumps(
        other.credential)
    no(w, encode_qr(present_raw(wallet, payload)), Reason.CBOR_DUPLICATE_KEY)


@case("refuse-cbor-unexpected-tag", "An epoch-date tag (1) around iat; the COSE_Sign1 tag twice.")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet()
    no(w, encode_qr(present_raw(wallet, cbor2.dumps(_pres(wallet, IAT=cbor2.CBORTag(1, NOW))))),
       Reason.CBOR_UNEXPECTED_TAG)
    no(w, b"\xd2" + wallet.presentation(now=NOW), Reason.CBOR_UNEXPECTED_TAG)


@case("refuse-cbor-unsupported-type", "A float where an integer is due; `undefined`.")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet()
    no(w, encode_qr(present_raw(wallet, cbor2.dumps(_pres(wallet, IAT=float(NOW))))),
       Reason.CBOR_UNSUPPORTED_TYPE)
    no(w, b"\xd2\x84\xf7\xa0\x40\x40", Reason.CBOR_UNSUPPORTED_TYPE)


@case("refuse-cbor-trailing-bytes", "One byte after the COSE_Sign1.")
def _(w: World) -> None:
    w.load()
    no(w, encode_qr(w.wallet().presentation(now=NOW) + b"\x00"), Reason.CBOR_TRAILING_BYTES)


# COSE.


@case("refuse-cose-malformed", "An untagged COSE_Sign1; a signature of 63 bytes; an "
      "protected header label the presentation does not allow (typ).")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet()
    data = wallet.presentation(now=NOW)
    no(w, data[1:], Reason.COSE_MALFORMED)
    parts = sign1_parts(wallet.presentation(now=NOW))
    parts[3] = parts[3][:63]
    no(w, cbor2.dumps(cbor2.CBORTag(18, parts)), Reason.COSE_MALFORMED)
    payload = sign1_parts(wallet.presentation(now=NOW))[2]
    no(w, present_raw(wallet, payload, {cose.HDR_ALG: cose.ALG_ES256, cose.HDR_TYP: "x"}),
       Reason.COSE_MALFORMED)


@case("refuse-alg-not-allowed", "alg ES384 (-35), EdDSA (-8), the text 'ES256', missing alg; "
      "on the presentation and on the credential.")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet()
    payload = sign1_parts(wallet.presentation(now=NOW))[2]
    for alg in (-35, -8, "ES256"):
        no(w, encode_qr(present_raw(wallet, payload, {cose.HDR_ALG: alg})),
           Reason.ALG_NOT_ALLOWED)
    no(w, encode_qr(present_raw(wallet, payload, {cose.HDR_KID: b"x"})), Reason.ALG_NOT_ALLOWED)
    cparts = sign1_parts(wallet.credential)
    bad = cose.sign(w.issuer.key, {cose.HDR_ALG: -35, cose.HDR_KID: w.issuer.kid}, cparts[2])
    w2 = w.phone(bad, wallet.device_key, "alg")
    no(w, w2.present_qr(now=NOW), Reason.ALG_NOT_ALLOWED)


@case("refuse-unprotected-header-not-empty", "A kid in the unprotected header (key-id "
      "confusion); checked before alg, so a wrong alg with it gives the same reason.")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet()
    payload = sign1_parts(wallet.presentation(now=NOW))[2]
    no(w, encode_qr(present_raw(wallet, payload, unprotected={cose.HDR_KID: b"x"})),
       Reason.UNPROTECTED_HEADER_NOT_EMPTY)
    no(w, encode_qr(present_raw(wallet, payload, {cose.HDR_ALG: -35},
                                unprotected={cose.HDR_KID: b"x"})),
       Reason.UNPROTECTED_HEADER_NOT_EMPTY)


@case("refuse-key-malformed", "The credential's device key: a point not on P-256; an x of 31 "
      "bytes.")
def _(w: World) -> None:
    w.load()
    payload, device = w.credential_claims("a")
    payload[claims.CNF][claims.CNF_COSE_KEY] = cose.encode_key(device.public_key(),
                                                               compressed=False)
    payload[claims.CNF][claims.CNF_COSE_KEY][cose.KEY_Y] = b"\x01" * 32
    no(w, w.wallet("a", payload=payload, device=device).present_qr(now=NOW), Reason.KEY_MALFORMED)
    payload, device = w.credential_claims("b")
    payload[claims.CNF][claims.CNF_COSE_KEY][cose.KEY_X] = b"\x01" * 31
    no(w, w.wallet("b", payload=payload, device=device).present_qr(now=NOW), Reason.KEY_MALFORMED)


@case("refuse-key-wrong-curve", "The issuer certified a P-384 device key (crv 2): ES256 is "
      "pinned.")
def _(w: World) -> None:
    w.load()
    payload, device = w.credential_claims()
    nums = _p384_key("p384").public_key().public_numbers()
    payload[claims.CNF] = {claims.CNF_COSE_KEY: {1: 2, -1: 2, -2: nums.x.to_bytes(48, "big"),
                                                 -3: nums.y.to_bytes(48, "big")}}
    no(w, w.wallet(payload=payload, device=device).present_qr(now=NOW), Reason.KEY_WRONG_CURVE)


# Claims.


@case("refuse-token-type-mismatch", "The issuer's status list re-signed in a credential "
      "envelope (typ is not 1); a presentation whose typ is 1.")
def _(w: World) -> None:
    w.load()
    parts = sign1_parts(w.issuer.status_list(now=NOW))
    token = cose.sign(w.issuer.key, {1: -7, 4: w.issuer.kid}, parts[2])
    no(w, w.phone(token, w.device(), "typ").present_qr(now=NOW), Reason.TOKEN_TYPE_MISMATCH)
    wallet = w.wallet()
    no(w, encode_qr(present_raw(wallet, cbor2.dumps(_pres(wallet, TYP=1)))),
       Reason.TOKEN_TYPE_MISMATCH)


@case("refuse-claims-malformed", "Signed by the issuer but not the schema: an unknown claim "
      "(-20), true for an integer, an empty -6 array, a name of 65 bytes (33 x 'É'), a name "
      "with an escape sequence, a no-break space, a line separator; a presentation with a "
      "missing counter.")
def _(w: World) -> None:
    w.load()
    fam = w.family()
    variants: list[tuple[str, Callable[[dict], None]]] = [
        ("unknown", lambda p: p.__setitem__(-20, "medical data")),
        ("bool", lambda p: p.__setitem__(claims.C_GENERATION, True)),
        ("empty-6", lambda p: p.__setitem__(claims.C_BENEFICIARIES, [])),
        ("name65", lambda p: p[claims.C_INSURED].__setitem__(claims.P_GIVEN_NAMES, "É" * 33)),
        ("esc", lambda p: p[claims.C_INSURED].__setitem__(claims.P_FAMILY_NAME, "NOM\x1b[2J")),
        ("nbsp", lambda p: p[claims.C_INSURED].__setitem__(claims.P_FAMILY_NAME, "A\u00a0B")),
        ("lsep", lambda p: p[claims.C_INSURED].__setitem__(claims.P_FAMILY_NAME, "A\u2028B")),
        ("future-birth", lambda p: p[claims.C_INSURED].__setitem__(claims.P_BIRTH_DATE,
                                                                   20301231)),
        ("tiers-payant", lambda p: p[claims.C_AMC].__setitem__(claims.A_TIERS_PAYANT, 10)),
        ("generation", lambda p: p.__setitem__(claims.C_GENERATION, 2**32 + 1)),
    ]
    for label, edit in variants:
        payload, device = w.credential_claims(label, fam=w.family(7, 1, amc=True))
        edit(payload)
        no(w, w.wallet(label, payload=payload, device=device).present_qr(now=NOW),
           Reason.CLAIMS_MALFORMED)
    del fam
    wallet = w.wallet("pres")
    payload = _pres(wallet)
    del payload[claims.PR_COUNTER]
    no(w, encode_qr(present_raw(wallet, cbor2.dumps(payload))), Reason.CLAIMS_MALFORMED)


def _with_nir(w: World, label: str, nir: str) -> Wallet:
    fam = w.family(7, 1, nir_kind="mainland")
    return w.wallet(label, insured=dataclasses.replace(fam.insured, nir=nir), fam=fam)


@case("refuse-nir-malformed", "A NIR with month 15 (no pseudo-month), and one of 14 characters.")
def _(w: World) -> None:
    nir = w.family(7, 1, nir_kind="mainland").insured.nir
    a = _with_nir(w, "a", with_key(nir[:3] + "15" + nir[5:13]))
    b = _with_nir(w, "b", nir[:14])
    w.load()
    no(w, a.present_qr(now=NOW), Reason.NIR_MALFORMED)
    no(w, b.present_qr(now=NOW), Reason.NIR_MALFORMED)


@case("refuse-nir-bad-key", "A NIR whose 2-digit key is not 97 - (N mod 97).")
def _(w: World) -> None:
    nir = w.family(7, 1, nir_kind="mainland").insured.nir
    wallet = _with_nir(w, "a", nir[:13] + f"{(int(nir[13:]) % 97) + 1:02d}")
    w.load()
    no(w, wallet.present_qr(now=NOW), Reason.NIR_BAD_KEY)


@case("refuse-nir-birth-date-mismatch", "The seeds' 'father's number': the NIR's birth year is "
      "not the insured's.")
def _(w: World) -> None:
    nir = w.family(7, 1, nir_kind="mainland").insured.nir
    year = (int(nir[1:3]) + 30) % 100
    wallet = _with_nir(w, "a", with_key(nir[0] + f"{year:02d}" + nir[3:13]))
    w.load()
    no(w, wallet.present_qr(now=NOW), Reason.NIR_BIRTH_DATE_MISMATCH)


@case("refuse-beneficiaries-inconsistent", "Two beneficiaries with the same rank; the same "
      "(birth date, birth rank); a beneficiary with a NIR; one born tomorrow.")
def _(w: World) -> None:
    fam = w.family(12, 2)
    b0, b1 = fam.beneficiaries
    same_rank = w.wallet("rank", fam=fam, beneficiaries=(b0, dataclasses.replace(b1, rank=b0.rank)))
    twin = w.wallet("twin", fam=fam, beneficiaries=(b0, dataclasses.replace(
        b1, birth_date=b0.birth_date, birth_rank=b0.birth_rank)))
    payload, device = w.credential_claims("nir", fam=fam)
    payload[claims.C_BENEFICIARIES][0][claims.P_NIR] = fam.insured.nir
    with_nir = w.wallet("nir", payload=payload, device=device)
    payload, device = w.credential_claims("future", fam=fam)
    payload[claims.C_BENEFICIARIES][0][claims.P_BIRTH_DATE] = 20260922
    future = w.wallet("future", payload=payload, device=device)
    w.load()
    for wallet in (same_rank, twin, with_nir, future):
        no(w, wallet.present_qr(now=NOW), Reason.BENEFICIARIES_INCONSISTENT)


# Trust.


@case("refuse-trust-list-invalid", "Trust lists that are not loaded (the previous one stays): "
      "signed by a signer the anchor never certified; by an issuer key (no trust-list role); "
      "a header kid that is not the signer certificate's; issued 61 s in the future; signed by "
      "a list signer whose certificate expired 61 s ago; five certificates under one kid; an "
      "entry that is not a certificate.")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet()
    w.case.load_status_list(w.issuer.status_list(now=NOW - 30))
    bad = Reason.TRUST_LIST_INVALID.value
    rogue = TestPki(seed=666, now=NOW).trust_list(now=NOW, sequence=99)
    w.case.load_trust_list(rogue, expect=bad)
    w.case.load_trust_list(pki_tools.trust_list(
        w.issuer.key, w.issuer.certificate, [], sequence=100, issued_at=NOW, expires_at=NOW + 10,
        grace=0), expect=bad)
    payload = sign1_parts(w.pki.trust_list(now=NOW, sequence=101))[2]
    header = {cose.HDR_ALG: cose.ALG_ES256, cose.HDR_KID: b"NOTHING!",
              cose.HDR_SIGNER_CERT: w.pki.list_signer_certificate}
    w.case.load_trust_list(cose.sign(w.pki.list_signer_key, header, payload), expect=bad)
    w.case.load_trust_list(w.pki.trust_list(now=NOW + 61, sequence=102), expect=bad)
    expired = pki_tools.certificate(
        w.pki.anchor_key, subject="expired list signer",
        public_key=w.pki.list_signer_key.public_key(), roles=ROLE_SIGN_TRUST_LISTS,
        not_before=NOW - 1000, not_after=NOW - 61)
    w.case.load_trust_list(pki_tools.trust_list(
        w.pki.list_signer_key, expired, [w.issuer.certificate], sequence=103, issued_at=NOW - 100,
        expires_at=NOW + 100, grace=0), expect=bad)
    shared = [w.pki.new_issuer(f"SHARED {i}", kid=b"SAMEKID!").certificate for i in range(5)]
    w.case.load_trust_list(w.pki.trust_list(now=NOW, entries=shared, sequence=104), expect=bad)
    w.case.load_trust_list(w.pki.trust_list(now=NOW, entries=[w.issuer.certificate, b"\x01"],
                                            sequence=105), expect=bad)
    ok(w, wallet.present_qr(now=NOW))


@case("refuse-trust-list-rollback", "A trust list with a lower sequence than the held one.")
def _(w: World) -> None:
    w.case.load_trust_list(w.pki.trust_list(now=NOW - 100, sequence=5))
    w.case.load_trust_list(w.pki.trust_list(now=NOW - 50, sequence=4),
                           expect=Reason.TRUST_LIST_ROLLBACK.value)


@case("refuse-trust-list-missing", "No trust list was ever loaded.")
def _(w: World) -> None:
    no(w, w.wallet().present_qr(now=NOW), Reason.TRUST_LIST_MISSING)


@case("refuse-trust-list-expired", "The trust list expired and its grace period (1 h) is over.")
def _(w: World) -> None:
    w.case.load_trust_list(w.pki.trust_list(now=NOW - DAY - 4000, validity=DAY, grace=3600))
    wallet = w.wallet()
    w.case.load_status_list(w.issuer.status_list(now=NOW - 60))
    no(w, wallet.present_qr(now=NOW), Reason.TRUST_LIST_EXPIRED)


@case("refuse-issuer-unknown", "A credential whose kid no certificate on the list carries.")
def _(w: World) -> None:
    other = w.pki.new_issuer("CPAM NOT LISTED")
    wallet = w.wallet(key=other.key, kid=other.kid)
    w.load()
    no(w, wallet.present_qr(now=NOW), Reason.ISSUER_UNKNOWN)


@case("refuse-issuer-not-under-anchor", "The trust list carries an issuer certificate the anchor "
      "did not sign (skipped at load); a credential of that issuer.")
def _(w: World) -> None:
    rogue = TestPki(seed=666, now=NOW).issuers[0]
    w.case.load_trust_list(w.pki.trust_list(
        now=NOW - 60, entries=[w.issuer.certificate, rogue.certificate]))
    wallet = w.wallet(key=rogue.key, kid=rogue.kid)
    w.case.load_status_list(w.issuer.status_list(now=NOW - 60))
    no(w, wallet.present_qr(now=NOW), Reason.ISSUER_NOT_UNDER_ANCHOR)


@case("refuse-issuer-role-not-allowed", "A credential signed by a certificate that may sign "
      "status lists but not issue credentials (roles 2).")
def _(w: World) -> None:
    status_only = w.pki.new_issuer("STATUS ONLY", roles=ROLE_SIGN_STATUS_LISTS)
    w.case.load_trust_list(w.pki.trust_list(
        now=NOW - 60, entries=[w.issuer.certificate, status_only.certificate]))
    wallet = w.wallet(key=status_only.key, kid=status_only.kid)
    w.case.load_status_list(w.issuer.status_list(now=NOW - 60))
    no(w, wallet.present_qr(now=NOW), Reason.ISSUER_ROLE_NOT_ALLOWED)


@case("refuse-issuer-cert-validity", "A credential valid one second past its issuer "
      "certificate.")
def _(w: World) -> None:
    wallet = w.wallet(expires_at=w.pki.not_after + 1)
    w.load()
    no(w, wallet.present_qr(now=NOW), Reason.ISSUER_CERT_VALIDITY)


@case("refuse-credential-signature-invalid", "The holder adds a beneficiary to their credential "
      "after the issuer signed it (and signs the presentation with their real device key).")
def _(w: World) -> None:
    wallet = w.wallet(fam=w.family(7, 1))
    w.load()
    parts = sign1_parts(wallet.credential)
    payload = cbor2.loads(parts[2])
    extra = dict(payload[claims.C_BENEFICIARIES][0])
    extra.update({claims.P_RANK: 2, claims.P_GIVEN_NAMES: "INTRUS", claims.P_BIRTH_DATE: 20100101})
    payload[claims.C_BENEFICIARIES].append(extra)
    parts[2] = cbor2.dumps(payload)
    tampered = w.phone(cbor2.dumps(cbor2.CBORTag(18, parts)), wallet.device_key, "t")
    no(w, tampered.present_qr(now=NOW), Reason.CREDENTIAL_SIGNATURE_INVALID)


@case("refuse-presentation-signature-invalid", "A copied credential presented without the "
      "phone: signed by another key.")
def _(w: World) -> None:
    wallet = w.wallet()
    w.load()
    thief = w.phone(wallet.credential, w.device("thief"), "thief")
    no(w, thief.present_qr(now=NOW), Reason.PRESENTATION_SIGNATURE_INVALID)


# Time.


@case("refuse-credential-not-yet-valid", "nbf 1000 s ahead of the clock.")
def _(w: World) -> None:
    wallet = w.wallet(not_before=NOW + 1000)
    w.load()
    no(w, wallet.present_qr(now=NOW), Reason.CREDENTIAL_NOT_YET_VALID)


@case("refuse-credential-expired", "exp 61 s before the clock (the skew is 60 s).")
def _(w: World) -> None:
    wallet = w.wallet(expires_at=NOW - 61)
    w.load()
    no(w, wallet.present_qr(now=NOW), Reason.CREDENTIAL_EXPIRED)


@case("refuse-presentation-too-old", "A QR made 181 s ago (max age 120 + skew 60); an NFC "
      "presentation made 91 s ago (30 + 60).")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet()
    no(w, wallet.present_qr(now=NOW - 181), Reason.PRESENTATION_TOO_OLD)
    c = challenge_for(w)
    w.case.issue_challenge(c)
    no(w, wallet.present_nfc(c, now=NOW - 91), Reason.PRESENTATION_TOO_OLD, challenge=c)


@case("refuse-clock-skew", "A presentation made 61 s in the future.")
def _(w: World) -> None:
    w.load()
    no(w, w.wallet().present_qr(now=NOW + 61), Reason.CLOCK_SKEW)


# Status lists.


@case("refuse-status-list-invalid", "Status lists that are not loaded: signed by a key not on "
      "the trust list under the issuer's kid; a zlib bomb (5 MiB); issued 61 s in the future; "
      "for a list id no certificate names.")
def _(w: World) -> None:
    w.load()
    bad = Reason.STATUS_LIST_INVALID.value
    other = w.pki.new_issuer("OTHER")
    common = {"list_id": w.issuer.status_list_id, "issued_at": NOW, "expires_at": NOW + 60,
              "ttl": 60}
    w.case.load_status_list(pki_tools.status_list(other.key, w.issuer.kid, entries=b"\x00",
                                                  **common), expect=bad)
    w.case.load_status_list(pki_tools.status_list(w.issuer.key, w.issuer.kid,
                                                  entries=bytes(5 << 20), **common), expect=bad)
    w.case.load_status_list(w.issuer.status_list(now=NOW + 61), expect=bad)
    w.case.load_status_list(pki_tools.status_list(
        w.issuer.key, w.issuer.kid, entries=b"\x00", **{**common, "list_id": "urn:other"}),
        expect=bad)


@case("refuse-status-list-unavailable", "No status list for the issuer's list id was loaded.")
def _(w: World) -> None:
    w.case.load_trust_list(w.trust_list)
    no(w, w.wallet().present_qr(now=NOW), Reason.STATUS_LIST_UNAVAILABLE)


@case("refuse-status-list-stale", "The status list expired 3 days and 1 s ago (grace 3 days); "
      "the same list 1 s earlier is still used.")
def _(w: World) -> None:
    wallet = w.wallet()
    w.case.load_trust_list(w.trust_list)
    w.case.load_status_list(w.issuer.status_list(now=NOW - 4 * DAY, validity=DAY))
    ok(w, wallet.present_qr(now=NOW), NOW)
    no(w, wallet.present_qr(now=NOW + 1), Reason.STATUS_LIST_STALE, now=NOW + 1)


@case("refuse-status-index-out-of-range", "A credential whose status index is past the list.")
def _(w: World) -> None:
    wallet = w.wallet(status_index=100_000)
    w.load()
    no(w, wallet.present_qr(now=NOW), Reason.STATUS_INDEX_OUT_OF_RANGE)


@case("refuse-credential-revoked", "Status 1 (deactivated phone) and status 3 (unassigned: "
      "treated as invalid).")
def _(w: World) -> None:
    one = w.wallet("one", status_value=status.INVALID)
    three = w.wallet("three", status_value=3)
    w.load()
    no(w, one.present_qr(now=NOW), Reason.CREDENTIAL_REVOKED)
    no(w, three.present_qr(now=NOW), Reason.CREDENTIAL_REVOKED)


@case("refuse-credential-suspended", "Status 2.")
def _(w: World) -> None:
    wallet = w.wallet(status_value=status.SUSPENDED)
    w.load()
    no(w, wallet.present_qr(now=NOW), Reason.CREDENTIAL_SUSPENDED)


@case("refuse-activation-superseded", "The app activated on a new phone (generation 2); the "
      "status list predates it (offline). Once the new phone is seen, the old one is refused.")
def _(w: World) -> None:
    fam = w.family()
    old = w.wallet("old", fam=fam)
    w.load()
    new = w.wallet("new", fam=fam, activation_generation=2)
    ok(w, old.present_qr(now=NOW))
    ok(w, new.present_qr(now=NOW))
    no(w, old.present_qr(now=NOW + 1), Reason.ACTIVATION_SUPERSEDED, now=NOW + 1)


# Freshness.


@case("refuse-replayed", "The same QR text shown twice.")
def _(w: World) -> None:
    w.load()
    text = w.wallet().present_qr(now=NOW)
    ok(w, text)
    no(w, text, Reason.REPLAYED, now=NOW + 5)


@case("refuse-counter-not-increasing", "A QR made earlier (photographed) shown after a later "
      "one: never seen, but its counter is lower.")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet()
    earlier = wallet.present_qr(now=NOW)
    later = wallet.present_qr(now=NOW + 1)
    ok(w, later, NOW + 2)
    no(w, earlier, Reason.COUNTER_NOT_INCREASING, now=NOW + 3)


@case("refuse-challenge-missing", "A QR presentation's bytes sent over NFC.")
def _(w: World) -> None:
    w.load()
    no(w, w.wallet().presentation(now=NOW), Reason.CHALLENGE_MISSING)


@case("refuse-challenge-unexpected", "An NFC presentation (with a challenge) shown as a QR.")
def _(w: World) -> None:
    w.load()
    c = challenge_for(w)
    w.case.issue_challenge(c)
    no(w, encode_qr(w.wallet().present_nfc(c, now=NOW)), Reason.CHALLENGE_UNEXPECTED)


@case("refuse-challenge-unknown", "A challenge the host never issued; one issued to another "
      "board.")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet()
    w.case.issue_challenge(challenge_for(w, "issued"))
    bogus = challenge_for(w, "never")
    no(w, wallet.present_nfc(bogus, now=NOW), Reason.CHALLENGE_UNKNOWN, challenge=bogus)
    c = challenge_for(w, "b")
    w.case.issue_challenge(c, board="board-B")
    no(w, wallet.present_nfc(c, now=NOW), Reason.CHALLENGE_UNKNOWN, challenge=c)


@case("refuse-challenge-expired", "A challenge used 31 s after it was issued (TTL 30 s).")
def _(w: World) -> None:
    w.load()
    c = challenge_for(w)
    w.case.issue_challenge(c, now=NOW - 31)
    no(w, w.wallet().present_nfc(c, now=NOW), Reason.CHALLENGE_EXPIRED, challenge=c)


@case("refuse-challenge-reused", "The same challenge answered twice (two presentations).")
def _(w: World) -> None:
    w.load()
    wallet = w.wallet()
    c = challenge_for(w)
    w.case.issue_challenge(c)
    ok(w, wallet.present_nfc(c, now=NOW), challenge=c)
    no(w, wallet.present_nfc(c, now=NOW + 1), Reason.CHALLENGE_REUSED, now=NOW + 1, challenge=c)


# --- writing and checking -----------------------------------------------------------------------


def token_vectors() -> dict[str, dict[str, Any]]:
    """Every token case, run against our verifier while it is built."""
    out = {}
    with deterministic_signatures(), tempfile.TemporaryDirectory() as tmp:
        for name, description, build, policy in CASES:
            c = Case(name, description, policy)
            world = World(c, Path(tmp) / name)
            try:
                build(world)
            finally:
                if c._runner is not None:
                    c._runner.close()
            out[name] = c.document()
    return out


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=False) + "\n"


def all_vectors() -> dict[str, dict[str, dict[str, Any]]]:
    """Every vector by directory: tokens/, link/."""
    from comptoir_tools.conformance import link as conformance_link

    return {"tokens": token_vectors(), "link": conformance_link.link_vectors()}


def write(out: Path) -> list[Path]:
    written = []
    for sub, docs in all_vectors().items():
        directory = out / sub
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("*.json"):
            if old.stem not in docs:
                old.unlink()
        for name, doc in docs.items():
            path = directory / f"{name}.json"
            path.write_text(dump(doc), encoding="utf-8")
            written.append(path)
    return written


def check(directory: Path) -> dict[str, list[str]]:
    """Run every vector under `directory` against this implementation: name -> problems."""
    from comptoir_tools.conformance import link as conformance_link

    runners: dict[str, Callable[[dict[str, Any]], list[str]]] = {
        "tokens": run_token_vector, "link": conformance_link.run_link_vector}
    failures = {}
    for sub, run in runners.items():
        for path in sorted((directory / sub).glob("*.json")):
            problems = run(json.loads(path.read_text(encoding="utf-8")))
            if problems:
                failures[f"{sub}/{path.name}"] = problems
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="comptoir conformance",
        description="Conformance vectors for the token format and the serial link.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write every vector (deterministic)")
    g.add_argument("--out", type=Path, default=Path("conformance"))
    c = sub.add_parser("check", help="run this implementation against a vector directory")
    c.add_argument("directory", type=Path, nargs="?", default=Path("conformance"))
    args = parser.parse_args(argv)
    if args.command == "generate":
        written = write(args.out)
        print(f"{len(written)} vectors written under {args.out}")
        return 0
    failures = check(args.directory)
    for name, problems in failures.items():
        for p in problems:
            print(f"FAIL {name}: {p}")
    total = len(list(args.directory.glob("*/*.json")))
    print(f"{total - len(failures)}/{total} vectors pass")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
