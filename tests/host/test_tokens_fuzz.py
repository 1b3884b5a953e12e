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
