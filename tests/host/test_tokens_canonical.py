"""The direct reader of canonical presentations (canonical.py) may only ever accept what the
general path accepts, with the same values; and wallet presentations must take it. Also the
hand-built DER signature against cryptography's encoder."""

from __future__ import annotations

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokens_fixtures import BOARD, NOW, World

from comptoir.tokens import canonical, cbor_safe, claims, cose
from comptoir.tokens.reasons import TokenError
from comptoir.tokens.verify import (
    CREDENTIAL_LIMITS,
    PRESENTATION_CLAIMS_LIMITS,
    PRESENTATION_LIMITS,
    decode_qr,
)


def general(data: bytes):
    """The general path's reading of a presentation, or None where it refuses."""
    try:
        sign1 = cose.parse_sign1(data, PRESENTATION_LIMITS)
        pres = cbor_safe.decode(sign1.payload, PRESENTATION_CLAIMS_LIMITS)
        iat, cti, counter, credential, challenge = claims.parse_presentation(pres)
    except TokenError:
        return None
    tbs = cose.sig_structure(sign1.protected_bytes, sign1.payload)
    return tbs, sign1.signature, iat, cti, counter, credential, challenge


def agrees(data: bytes) -> bool:
    fast = canonical.read_presentation(data)
    return fast is None or fast == general(data)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("canonical"))
    wallet = world.wallet()
    qr = [decode_qr(wallet.present_qr(now=NOW)) for _ in range(3)]
    nfc = [wallet.present_nfc(world.challenges.issue(BOARD, now=NOW), now=NOW) for _ in range(3)]
    return qr + nfc


def test_wallet_presentations_take_the_direct_path_with_the_same_values(samples):
    for data in samples:
        fast = canonical.read_presentation(data)
        assert fast is not None
        assert fast == general(data)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_presentations_are_read_alike_or_left_to_the_general_path(samples, data):
    original = bytearray(data.draw(st.sampled_from(samples)))
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, len(original) - 1))
        if kind == "set":
            original[pos] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            original[pos:pos] = data.draw(st.binary(min_size=1, max_size=3))
        elif kind == "delete":
            del original[pos : pos + data.draw(st.integers(1, 3))]
        else:
            del original[pos:]
        if not original:
            return
    assert agrees(bytes(original))


# Generated presentations: key order, integer and length encodings (shortest or not), values
# at the edges of what the general path accepts, extra or missing keys, and a challenge.
_uints = st.one_of(
    st.integers(0, 2**64 - 1),
    st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**63]),
)
_values = st.one_of(_uints, st.binary(max_size=70), st.integers(-(2**63), -1), st.text(max_size=4),
                    st.booleans(), st.none())


@st.composite
def claim_maps(draw):
    entries = {
        claims.TYP: draw(st.one_of(st.just(2), _values)),
        claims.IAT: draw(st.one_of(_uints, _values)),
        claims.CTI: draw(st.one_of(st.binary(min_size=7, max_size=17), _values)),
        claims.PR_COUNTER: draw(st.one_of(_uints, _values)),
        claims.PR_CREDENTIAL: draw(st.one_of(st.binary(min_size=0, max_size=300), _values)),
    }
    if draw(st.booleans()):
        entries[claims.PR_CHALLENGE] = draw(st.one_of(st.binary(min_size=7, max_size=65), _values))
    if draw(st.booleans()):
        del entries[draw(st.sampled_from(sorted(entries)))]
    if draw(st.booleans()):
        entries[draw(st.sampled_from([1, 5, -5, 100]))] = draw(_values)
    keys = draw(st.permutations(sorted(entries)))
    return {k: entries[k] for k in keys}


def _long_head(major: int, n: int) -> bytes:
    """A non-shortest head for an argument n (which the general path refuses)."""
    return bytes((major << 5 | 25,)) + n.to_bytes(2, "big")


@settings(max_examples=400, deadline=None)
@given(payload_map=claim_maps(), long_payload_head=st.booleans(), tail=st.binary(max_size=2),
       signature=st.binary(min_size=63, max_size=65))
def test_generated_presentations_are_read_alike(payload_map, long_payload_head, tail, signature):
    payload = cbor2.dumps(payload_map)
    shortest = cbor2.dumps(payload)[: -len(payload)]
    head = _long_head(2, len(payload)) if long_payload_head else shortest
    data = (b"\xd2\x84\x43\xa1\x01\x26\xa0" + head + payload + cbor2.dumps(signature) + tail)
    assert agrees(data)


def test_generated_presentations_do_reach_the_direct_path():
    """The generator above is not vacuous: a well-formed one is read directly."""
    payload = cbor2.dumps({claims.TYP: 2, claims.IAT: NOW, claims.CTI: b"n" * 8,
                           claims.PR_COUNTER: 3, claims.PR_CREDENTIAL: b"\xd2" * 40})
    data = b"\xd2\x84\x43\xa1\x01\x26\xa0" + cbor2.dumps(payload) + cbor2.dumps(b"s" * 64)
    assert canonical.read_presentation(data) is not None and agrees(data)


@given(st.binary(min_size=64, max_size=64))
def test_der_signature_matches_cryptography(raw):
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    expected = encode_dss_signature(r, s) if r and s else None
    assert cose.der_signature(raw) == expected


@pytest.mark.parametrize("raw", [bytes(64), b"\x80" * 64, b"\x00" * 31 + b"\x01" * 33,
                                 b"\x7f" + b"\xff" * 63])
def test_der_signature_edges(raw):
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    assert cose.der_signature(raw) == (encode_dss_signature(r, s) if r and s else None)


# --- the credential envelope -----------------------------------------------------------------


def general_envelope(data: bytes):
    try:
        return cose.parse_sign1(data, CREDENTIAL_LIMITS, frozenset((cose.HDR_ALG, cose.HDR_KID)))
    except TokenError:
        return None


def envelope_agrees(data: bytes) -> bool:
    fast = canonical.read_credential_envelope(data)
    if fast is None:
        return True
    protected, kid, payload, signature = fast
    return general_envelope(data) == cose.Sign1(
        protected, {cose.HDR_ALG: cose.ALG_ES256, cose.HDR_KID: kid}, payload, signature)


@pytest.fixture(scope="module")
def credentials(samples):
    return [canonical.read_presentation(p)[5] for p in samples[:1]] + [
        canonical.read_presentation(p)[5] for p in samples[3:4]]


def test_issued_credentials_take_the_direct_path(credentials):
    for cred in credentials:
        assert canonical.read_credential_envelope(cred) is not None
        assert envelope_agrees(cred)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_credential_envelopes_are_read_alike(credentials, data):
    cred = bytearray(data.draw(st.sampled_from(credentials)))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, min(len(cred) - 1, 40)))  # the envelope's head mostly
        if data.draw(st.booleans()):
            cred[pos] = data.draw(st.integers(0, 255))
        else:
            del cred[pos : pos + data.draw(st.integers(1, 3))]
        if not cred:
            return
    assert envelope_agrees(bytes(cred))


@settings(max_examples=300, deadline=None)
@given(header=st.one_of(
           st.fixed_dictionaries({1: st.just(-7), 4: st.binary(max_size=20)}),
           st.dictionaries(st.sampled_from([1, 4, 2, -1]), _values, max_size=3)),
       payload=st.binary(max_size=300), signature=st.binary(min_size=63, max_size=65),
       long_head=st.booleans())
def test_generated_credential_envelopes_are_read_alike(header, payload, signature, long_head):
    protected = cbor2.dumps(header)
    shortest = cbor2.dumps(payload)[: len(cbor2.dumps(payload)) - len(payload)]
    head = _long_head(2, len(payload)) if long_head else shortest
    data = (b"\xd2\x84" + cbor2.dumps(protected) + b"\xa0" + head + payload
            + cbor2.dumps(signature))
    assert envelope_agrees(data)
