"""Base45 (RFC 9285)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comptoir.tokens.base45 import ALPHABET, Base45Error, decode, encode

RFC_9285 = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
]


def reference_decode(text: str) -> bytes:
    """The RFC's algorithm, written the plain way, to check the fast decoder against."""
    out = bytearray()
    for i in range(0, len(text), 3):
        group = [ALPHABET.index(c) for c in text[i : i + 3]]
        n = sum(v * 45**k for k, v in enumerate(group))
        out += n.to_bytes(2 if len(group) == 3 else 1, "big")
    return bytes(out)


@pytest.mark.parametrize(("raw", "text"), RFC_9285)
def test_rfc_examples(raw, text):
    assert encode(raw) == text
    assert decode(text) == raw


@pytest.mark.parametrize("bad", ["GGW", "ZZ", "A", "AAAA", "a00", "00é", "\n00"])
def test_invalid(bad):
    with pytest.raises(Base45Error):
        decode(bad)


@given(st.binary(max_size=600))
def test_round_trip(data):
    text = encode(data)
    assert set(text) <= set(ALPHABET)
    assert decode(text) == data
    assert reference_decode(text) == data


@given(st.text(alphabet=ALPHABET, max_size=60))
def test_decoding_is_unique(text):
    """Either refused, or the only encoding of its bytes (no two QR texts for one token)."""
    try:
        data = decode(text)
    except Base45Error:
        return
    assert encode(data) == text
    assert reference_decode(text) == data


@pytest.mark.parametrize("size", [2046, 2047, 2200, 2201, 2400])
def test_long_texts_around_the_precomputed_mask(size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    text = encode(data)
    assert decode(text) == data
    with pytest.raises(Base45Error):
        decode(text[:-3] + "GGW")  # last full group out of range (65536 > 0xFFFF)
