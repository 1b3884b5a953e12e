"""No mutation of a valid presentation's bytes is ever accepted (QR text and NFC bytes)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tokens_fixtures import BOARD, NOW, World

from comptoir.tokens.base45 import ALPHABET
from comptoir.tokens.reasons import Reason
from comptoir.tokens.verify import decode_qr

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("fuzz"))
    wallet = world.wallet(world.family(beneficiaries=2, amc=True))
    # The credential is checked once first, so that mutations which leave its bytes intact
    # meet the verifier's credential cache (mutations inside it must miss the cache).
    assert world.qr(wallet.present_qr(now=NOW)).ok
    assert bytes(wallet.credential) in world.verifier._cache
    qr = wallet.present_qr(now=NOW)
    world.challenges = type(world.challenges)(ttl=10**9)
    world.verifier.challenges = world.challenges
    challenge = world.challenges.issue(BOARD, now=NOW)
    nfc = wallet.present_nfc(challenge, now=NOW)
    return world, qr, nfc


@st.composite
def mutations(draw, original: bytes | str):
    n = len(original)
    kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice"]))
    pos = draw(st.integers(0, n - 1))
    if isinstance(original, str):
        char = draw(st.sampled_from(ALPHABET + "abc:\x00é"))
        if kind in ("flip", "set"):
            return original[:pos] + char + original[pos + 1 :]
        if kind == "insert":
            return original[:pos] + char + original[pos:]
    else:
        if kind == "flip":
            bit = draw(st.integers(0, 7))
            return original[:pos] + bytes((original[pos] ^ (1 << bit),)) + original[pos + 1 :]
        if kind == "set":
            return original[:pos] + bytes((draw(st.integers(0, 255)),)) + original[pos + 1 :]
        if kind == "insert":
            return original[:pos] + draw(st.binary(min_size=1, max_size=4)) + original[pos:]
    if kind == "delete":
        length = draw(st.integers(1, 8))
        return original[:pos] + original[pos + length :]
    if kind == "truncate":
        return original[:pos]
    # splice: move a chunk elsewhere
    length = draw(st.integers(1, 16))
    chunk = original[pos : pos + length]
    rest = original[:pos] + original[pos + length :]
    at = draw(st.integers(0, len(rest)))
    return rest[:at] + chunk + rest[at:]


def check_refused(result) -> None:
    assert not result.ok, "a mutated presentation was accepted"
    assert result.reason is not Reason.INTERNAL_ERROR


def test_the_unmutated_presentations_are_valid(tmp_path):
    world = World(tmp_path)
    wallet = world.wallet()
    assert world.qr(wallet.present_qr(now=NOW)).ok
    challenge = world.challenges.issue(BOARD, now=NOW)
    assert world.nfc(wallet.present_nfc(challenge, now=NOW)).ok


@FUZZ
@given(data=st.data())
def test_mutated_nfc_bytes_are_never_accepted(setup, data):
    world, _, nfc = setup
    mutated = data.draw(mutations(nfc))
    assume(mutated != nfc)
    check_refused(world.nfc(mutated))


@FUZZ
@given(data=st.data())
def test_mutated_qr_text_is_never_accepted(setup, data):
    world, qr, _ = setup
    mutated = data.draw(mutations(qr))
    assume(mutated != qr)
    check_refused(world.qr(mutated))


@FUZZ
@given(data=st.data())
def test_mutated_qr_bytes_are_never_accepted(setup, data):
    """Mutations of the decoded bytes, re-encoded as a well-formed QR text."""
    from comptoir.tokens.verify import encode_qr

    world, qr, _ = setup
    raw = decode_qr(qr)
    mutated = data.draw(mutations(raw))
    assume(mutated != raw)
    check_refused(world.qr(encode_qr(mutated)))


# --- issuer-signed garbage: the claims parser never crashes -----------------------------------

cbor_leaves = st.one_of(
    st.integers(-(2**64), 2**64 - 1),
    st.binary(max_size=40),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
)
cbor_values = st.recursive(
    cbor_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.integers(-30, 30), st.text(max_size=4)), inner, max_size=4),
    ),
    max_leaves=12,
)


@st.composite
def altered_claims(draw, claims: dict):
    """The credential's claims with a few entries (at any depth) replaced, added or removed."""
    import copy

    claims = copy.deepcopy(claims)
    for _ in range(draw(st.integers(1, 3))):
        target = claims
        # Walk down a random path of maps and lists.
        for _ in range(draw(st.integers(0, 3))):
            children = list(target.items()) if isinstance(target, dict) else list(enumerate(target))
            containers = [(k, v) for k, v in children if isinstance(v, dict | list) and v]
            if not containers:
                break
            _, target = draw(st.sampled_from(containers))
        action = draw(st.sampled_from(["replace", "add", "delete"]))
        if isinstance(target, dict):
            if action == "add" or not target:
                target[draw(st.integers(-30, 30))] = draw(cbor_values)
            else:
                key = draw(st.sampled_from(sorted(target, key=repr)))
                if action == "delete":
                    del target[key]
                else:
                    target[key] = draw(cbor_values)
        elif target:
            index = draw(st.integers(0, len(target) - 1))
            if action == "delete":
                del target[index]
            elif action == "add":
                target.insert(index, draw(cbor_values))
            else:
                target[index] = draw(cbor_values)
    return claims


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_issuer_signed_garbage_is_refused_by_name_or_accepted_never_crashes(setup, data):
    """Past the signatures, the claims parser sees whatever an issuer signed: it must answer
    with a reason (or accept a still-valid credential), never fail with an exception."""
    from comptoir.tokens import claims as claim_keys
    from comptoir_tools.credentials.pki import new_device_key

    world = setup[0]
    device = new_device_key()
    cred = world.issuer.credential(
        world.family(seed=5, beneficiaries=2, amc=True), device.public_key(), now=NOW - 60
    )
    payload = data.draw(altered_claims(claim_keys.encode_credential(cred)))
    wallet = world.custom_wallet(payload=payload, device=device)
    result = world.qr(wallet.present_qr(now=NOW))
    assert result.ok or result.reason is not Reason.INTERNAL_ERROR
