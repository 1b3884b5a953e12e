"""Hostile-input CBOR decoding: a bounded pre-scan, then cbor2.

cbor2 5.9 bounds nesting depth (`max_depth`) but accepts duplicate map keys (last one wins),
indefinite lengths, non-minimal integer encodings and every semantic tag it knows; some tags
do real work on decode (bigfloat computes 2**exponent, regex compiles a pattern). So nothing
from outside reaches cbor2 before `_Scanner` has walked it once, in bounded time and memory,
and proved that it is inside the strict subset below. On that subset cbor2 has exactly one
interpretation, so the two parsers cannot disagree.

Accepted subset: unsigned and negative integers, byte and text strings, arrays, maps whose keys
are integers or text strings (no duplicates), false/true/null, and one tag chosen by the caller,
only around the top item. Every length and integer uses its shortest encoding (RFC 8949 §4.2.1
preferred serialisation), which also makes duplicate detection a comparison of key bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2

from .reasons import Reason, TokenError


@dataclass(frozen=True, slots=True)
class CborLimits:
    max_bytes: int
    max_depth: int
    max_items: int
    max_container: int
    top_tag: int | None = None


# Smallest argument allowed for each additional-information value (shortest form).
_MIN_ARG = {24: 24, 25: 0x100, 26: 0x10000, 27: 0x100000000}
_SIMPLE_OK = frozenset((20, 21, 22))  # false, true, null


def scan(data: bytes, limits: CborLimits) -> None:
    """Prove that `data` is exactly one item of the accepted subset, within `limits`.

    One loop over the bytes with an explicit stack (no recursion, no allocation beyond one
    stack entry per open container and one set of keys per open map): time and memory are
    linear in len(data), which `max_bytes` bounds.
    """
    end = len(data)
    if end > limits.max_bytes:
        raise TokenError(Reason.INPUT_TOO_LARGE, f"{end} bytes")
    if not end:
        raise TokenError(Reason.CBOR_TRUNCATED, "empty")
    max_items, max_depth, max_container = limits.max_items, limits.max_depth, limits.max_container
    pos = 0
    if data[0] >> 5 == 6:
        # The one tag the caller expects, only around the top item (not counted as a level).
        pos, tag = _tag_head(data, end)
        if tag != limits.top_tag:
            raise TokenError(Reason.CBOR_UNEXPECTED_TAG, f"tag {tag}")
    items = 0
    depth = 1
    remaining = 1  # items still to read in the current container (2 per map entry)
    seen: set[bytes] | None = None  # keys of the current map; None in an array
    stack: list[tuple[int, set[bytes] | None]] = []
    while True:
        if not remaining:
            if not stack:
                break
            remaining, seen = stack.pop()
            depth -= 1
            continue
        remaining -= 1
        is_key = seen is not None and remaining & 1  # map entries count down from 2n
        items += 1
        if items > max_items:
            raise TokenError(Reason.CBOR_TOO_MANY_ITEMS)
        if pos >= end:
            raise TokenError(Reason.CBOR_TRUNCATED)
        start = pos
        ib = data[pos]
        major = ib >> 5
        ai = ib & 0x1F
        if major == 7:
            if ai in _SIMPLE_OK:
                if is_key:
                    raise TokenError(Reason.CBOR_UNSUPPORTED_TYPE, "map key is not int or text")
                pos += 1
                continue
            if ai == 31:
                raise TokenError(Reason.CBOR_MALFORMED, "stray break")
            if 28 <= ai <= 30:
                raise TokenError(Reason.CBOR_MALFORMED, "reserved additional information")
            raise TokenError(Reason.CBOR_UNSUPPORTED_TYPE, "float or simple value")
        if ai < 24:
            arg = ai
            pos += 1
        elif ai < 28:
            stop = pos + 1 + (1 << (ai - 24))
            if stop > end:
                raise TokenError(Reason.CBOR_TRUNCATED)
            arg = int.from_bytes(data[pos + 1 : stop], "big")
            if arg < _MIN_ARG[ai]:
                raise TokenError(Reason.CBOR_NON_MINIMAL)
            pos = stop
        elif ai == 31:
            if major in (2, 3, 4, 5):
                raise TokenError(Reason.CBOR_INDEFINITE_LENGTH)
            raise TokenError(Reason.CBOR_MALFORMED, "indefinite length on a non-container")
        else:
            raise TokenError(Reason.CBOR_MALFORMED, "reserved additional information")
        if major <= 3:
            if major >= 2:
                pos += arg
                if pos > end:
                    raise TokenError(Reason.CBOR_TRUNCATED)
            if is_key:
                if major == 2:
                    raise TokenError(Reason.CBOR_UNSUPPORTED_TYPE, "map key is not int or text")
                # Shortest form makes equal keys byte-identical, so bytes are compared.
                key = data[start:pos]
                if key in seen:  # type: ignore[operator]
                    raise TokenError(Reason.CBOR_DUPLICATE_KEY)
                seen.add(key)  # type: ignore[union-attr]
            continue
        if major == 6:
            raise TokenError(Reason.CBOR_UNEXPECTED_TAG, f"tag {arg}")
        if is_key:
            raise TokenError(Reason.CBOR_UNSUPPORTED_TYPE, "map key is not int or text")
        if arg > max_container:
            raise TokenError(Reason.CBOR_TOO_MANY_ITEMS, "container too long")
        if not arg:
            continue
        if depth >= max_depth:
            raise TokenError(Reason.CBOR_TOO_DEEP)
        stack.append((remaining, seen))
        depth += 1
        if major == 4:
            remaining, seen = arg, None
        else:
            remaining, seen = 2 * arg, set()
    if pos != end:
        raise TokenError(Reason.CBOR_TRAILING_BYTES)


def _tag_head(data: bytes, end: int) -> tuple[int, int]:
    ai = data[0] & 0x1F
    if ai < 24:
        return 1, ai
    if ai >= 28:
        raise TokenError(Reason.CBOR_MALFORMED, "tag head")
    stop = 1 + (1 << (ai - 24))
    if stop > end:
        raise TokenError(Reason.CBOR_TRUNCATED)
    tag = int.from_bytes(data[1:stop], "big")
    if tag < _MIN_ARG[ai]:
        raise TokenError(Reason.CBOR_NON_MINIMAL)
    return stop, tag


def decode(data: bytes, limits: CborLimits) -> Any:
    """Scan, then decode with cbor2. Raises TokenError with the precise reason."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TokenError(Reason.CBOR_MALFORMED, "not bytes")
    data = bytes(data)
    scan(data, limits)
    try:
        # max_depth again as a second fence; the scan has already enforced a tighter one.
        return cbor2.loads(data, max_depth=limits.max_depth + 1)
    except (cbor2.CBORDecodeError, UnicodeDecodeError, ValueError) as exc:
        # Only invalid UTF-8 in a text string gets here: everything else was checked.
        raise TokenError(Reason.CBOR_MALFORMED, type(exc).__name__) from None
