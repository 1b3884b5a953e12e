"""Interop with an independent COSE/CWT implementation (python-cwt), used as an oracle."""

from __future__ import annotations

import time

import cbor2
import cwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cwt import COSE, COSEKey
from tokens_fixtures import NOW, World, sign1_parts

from comptoir.tokens import claims, cose
from comptoir.tokens.cbor_safe import CborLimits
from comptoir.tokens.verify import decode_qr
from comptoir_tools.credentials.pki import new_device_key
from comptoir_tools.credentials.wallet import Wallet

LIMITS = CborLimits(max_bytes=4096, max_depth=4, max_items=64, max_container=8, top_tag=18)


def cwt_keys(private: ec.EllipticCurvePrivateKey, kid: bytes) -> tuple[COSEKey, COSEKey]:
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pub = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return COSEKey.from_pem(pem, alg="ES256", kid=kid), COSEKey.from_pem(pub, alg="ES256", kid=kid)


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def test_a_sign1_made_by_cwt_verifies_with_ours():
    key = ec.generate_private_key(ec.SECP256R1())
    signer, _ = cwt_keys(key, b"kid-0001")
    token = COSE.new().encode(b"payload", signer, protected={1: -7, 4: b"kid-0001"})
    sign1 = cose.parse_sign1(token, LIMITS, frozenset((1, 4)))
    assert sign1.payload == b"payload" and sign1.kid == b"kid-0001"
    assert cose.verify(sign1, key.public_key())
    assert not cose.verify(sign1, ec.generate_private_key(ec.SECP256R1()).public_key())


def test_a_sign1_made_by_ours_verifies_with_cwt_and_tampering_fails_both():
    key = ec.generate_private_key(ec.SECP256R1())
    _, verifier = cwt_keys(key, b"kid-0002")
    token = cose.sign(key, {1: -7, 4: b"kid-0002"}, b"hello")
    assert COSE.new().decode(token, verifier) == b"hello"
    parts = sign1_parts(token)
    parts[2] = b"hellp"
    tampered = cbor2.dumps(cbor2.CBORTag(18, parts))
    with pytest.raises(cwt.VerifyError):
        COSE.new().decode(tampered, verifier)
    assert not cose.verify(cose.parse_sign1(tampered, LIMITS, frozenset((1, 4))), key.public_key())


def test_credentials_and_presentations_verify_with_cwt(world):
    wallet = world.wallet()
    _, issuer = cwt_keys(world.issuer.key, world.issuer.kid)
    _, device = cwt_keys(wallet.device_key, b"")
    assert COSE.new().decode(wallet.credential, issuer) == sign1_parts(wallet.credential)[2]
    presentation = decode_qr(wallet.present_qr(now=NOW))
    payload = cbor2.loads(COSE.new().decode(presentation, device))
    assert payload[claims.PR_CREDENTIAL] == wallet.credential


def test_the_credential_is_a_cwt_that_cwt_accepts(world):
    """cwt checks the CWT claims it knows (exp, nbf, iat, cti, cnf) against the real clock."""
    real_now = int(time.time())
    device = new_device_key()
    cred = world.issuer.credential(
        world.family(), device.public_key(), now=real_now - 60, validity=3600
    )
    token = world.issuer.sign(cred)
    _, issuer = cwt_keys(world.issuer.key, world.issuer.kid)
    decoded = cwt.decode(token, issuer)
    assert decoded[claims.CTI] == cred.credential_id
    assert decoded[claims.C_INSURED][claims.P_NIR] == cred.insured.nir


def test_a_credential_signed_by_cwt_passes_our_whole_pipeline(world):
    device = new_device_key()
    cred = world.issuer.credential(world.family(), device.public_key(), now=NOW - 60)
    signer, _ = cwt_keys(world.issuer.key, world.issuer.kid)
    token = COSE.new().encode(
        cbor2.dumps(claims.encode_credential(cred)),
        signer,
        protected={1: -7, 4: world.issuer.kid},
    )
    world.publish_status()
    result = world.qr(Wallet(token, device).present_qr(now=NOW))
    assert result.ok, result
    assert result.credential.credential_id == cred.credential_id


def test_cwt_also_accepts_a_high_s_signature():
    """Why replay cannot be keyed by signature bytes: an independent verifier accepts (r, n-s)."""
    key = ec.generate_private_key(ec.SECP256R1())
    _, verifier = cwt_keys(key, b"k")
    parts = sign1_parts(cose.sign(key, {1: -7}, b"x"))
    s = int.from_bytes(parts[3][32:], "big")
    parts[3] = parts[3][:32] + (cose.P256_ORDER - s).to_bytes(32, "big")
    assert COSE.new().decode(cbor2.dumps(cbor2.CBORTag(18, parts)), verifier) == b"x"
