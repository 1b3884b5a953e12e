"""The hostile-input CBOR guard: unit cases and properties."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comptoir.tokens.cbor_safe import CborLimits, decode, scan
from comptoir.tokens.reasons import Reason, TokenError

WIDE = CborLimits(max_bytes=1 << 16, max_depth=64, max_items=10_000, max_container=10_000)
TAGGED = CborLimits(max_bytes=1 << 16, max_depth=8, max_items=100, max_container=100, top_tag=18)

keys = st.one_of(st.integers(-(2**64), 2**64 - 1), st.text(max_size=8))
values = st.recursive(
    st.one_of(
        st.integers(-(2**64), 2**64 - 1),
        st.binary(max_size=40),
        st.text(max_size=20),
        st.booleans(),
        st.none(),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=30,
)


def reason(data: bytes, limits: CborLimits = WIDE) -> Reason:
    with pytest.raises(TokenError) as exc:
        decode(data, limits)
    return exc.value.reason


@given(values)
def test_subset_values_round_trip(value):
    assert decode(cbor2.dumps(value), WIDE) == value


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_are_decoded_canonically_or_refused(data):
    """Whatever is accepted is exactly cbor2's own (preferred) encoding of the result: no
    duplicate, non-minimal or indefinite form slips through. Nothing else ever escapes."""
    try:
        value = decode(data, WIDE)
    except TokenError:
        return
    assert cbor2.dumps(value) == data


@given(st.integers(1, 20), st.integers(1, 20))
def test_depth_limit_is_exact(depth, limit):
    data = b"\x81" * (depth - 1) + b"\x00"  # `depth` levels
    limits = CborLimits(1000, limit, 1000, 1000)
    if depth <= limit:
        assert decode(data, limits) is not None
    else:
        assert reason(data, limits) is Reason.CBOR_TOO_DEEP


@given(st.integers(0, 40), st.integers(1, 30), st.integers(1, 30))
def test_item_and_container_limits_are_exact(n, max_items, max_container):
    data = cbor2.dumps(list(range(n)))
    limits = CborLimits(1000, 4, max_items, max_container)
    if n > max_container or n + 1 > max_items:
        assert reason(data, limits) is Reason.CBOR_TOO_MANY_ITEMS
    else:
        assert decode(data, limits) == list(range(n))


@given(st.dictionaries(keys, st.integers(-1000, 1000), min_size=1, max_size=6), st.data())
def test_any_duplicate_key_is_refused(d, data):
    items = list(d.items())
    dup_key = data.draw(st.sampled_from([k for k, _ in items]))
    body = b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in items)
    body += cbor2.dumps(dup_key) + b"\x00"
    n = len(items) + 1
    head = bytes((0xA0 | n,)) if n < 24 else bytes((0xB8, n))
    assert reason(head + body) is Reason.CBOR_DUPLICATE_KEY


def test_unit_refusals():
    assert reason(b"") is Reason.CBOR_TRUNCATED
    assert reason(b"\x82\x01") is Reason.CBOR_TRUNCATED
    assert reason(b"\x5a\xff\xff\xff\xff") is Reason.CBOR_TRUNCATED  # huge length, no data
    assert reason(b"\x18\x05") is Reason.CBOR_NON_MINIMAL
    assert reason(b"\x19\x00\xff") is Reason.CBOR_NON_MINIMAL
    assert reason(b"\x9f\x01\xff") is Reason.CBOR_INDEFINITE_LENGTH
    assert reason(b"\x7f\x61a\xff") is Reason.CBOR_INDEFINITE_LENGTH
    assert reason(b"\xff") is Reason.CBOR_MALFORMED
    assert reason(b"\x1c") is Reason.CBOR_MALFORMED
    assert reason(b"\xf9\x3c\x00") is Reason.CBOR_UNSUPPORTED_TYPE  # half float
    assert reason(b"\xf7") is Reason.CBOR_UNSUPPORTED_TYPE  # undefined
    assert reason(b"\xa1\x80\x00") is Reason.CBOR_UNSUPPORTED_TYPE  # array as map key
    assert reason(b"\xc2\x41\x01") is Reason.CBOR_UNEXPECTED_TAG  # bignum
    assert reason(b"\xc5\x82\x01\x1b\x7f\xff\xff\xff\xff\xff\xff\xff") is (
        Reason.CBOR_UNEXPECTED_TAG  # bigfloat 2**huge: cbor2 alone would try to compute it
    )
    assert reason(b"\x01\x01") is Reason.CBOR_TRAILING_BYTES
    assert reason(b"\x62\xff\xfe") is Reason.CBOR_MALFORMED  # invalid UTF-8
    assert reason(bytes(100), CborLimits(99, 1, 1, 1)) is Reason.INPUT_TOO_LARGE


def test_top_tag_only_at_the_top():
    assert decode(b"\xd2\x80", TAGGED) == cbor2.CBORTag(18, [])
    assert reason(b"\xd2\xd2\x80", TAGGED) is Reason.CBOR_UNEXPECTED_TAG
    assert reason(b"\x81\xd2\x80", TAGGED) is Reason.CBOR_UNEXPECTED_TAG
    assert reason(b"\xd3\x80", TAGGED) is Reason.CBOR_UNEXPECTED_TAG
    assert reason(b"\xd2\x80", WIDE) is Reason.CBOR_UNEXPECTED_TAG


def test_shared_reference_and_set_tags_never_reach_cbor2():
    # tag 28/29 (shared references) can build cyclic structures in cbor2; tag 258 makes sets.
    for data in (b"\xd8\x1c\x81\xd8\x1d\x00", b"\xd9\x01\x02\x80"):
        assert reason(data) is Reason.CBOR_UNEXPECTED_TAG


def test_scan_of_the_largest_accepted_credential_shape_is_fast():
    """About 550 items (more than any real credential) scan in well under 5 ms."""
    import time

    limits = CborLimits(2048, 6, 700, 16)
    data = cbor2.dumps([[[0] * 16] * 16] * 2)
    t = time.perf_counter()
    for _ in range(20):
        scan(data, limits)
    assert (time.perf_counter() - t) / 20 < 5e-3
