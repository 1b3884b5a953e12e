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
_ARG_LEN = {24: 1, 25: 2, 26: 4, 27: 8}
_SIMPLE_OK = frozenset((20, 21, 22))  # false, true, null


class _Scanner:
    __slots__ = ("data", "end", "items", "limits")

    def __init__(self, data: bytes, limits: CborLimits) -> None:
        self.data = data
        self.end = len(data)
        self.limits = limits
        self.items = 0

    def head(self, pos: int) -> tuple[int, int, int]:
        """Return (major type, argument, position after the head)."""
        data = self.data
        if pos >= self.end:
            raise TokenError(Reason.CBOR_TRUNCATED)
        ib = data[pos]
        major = ib >> 5
        ai = ib & 0x1F
        if major == 7:
            if ai in _SIMPLE_OK:
                return 7, ai, pos + 1
            if ai == 31:
                raise TokenError(Reason.CBOR_MALFORMED, "stray break")
            if 28 <= ai <= 30:
                raise TokenError(Reason.CBOR_MALFORMED, "reserved additional information")
            raise TokenError(Reason.CBOR_UNSUPPORTED_TYPE, "float or simple value")
        if ai < 24:
            return major, ai, pos + 1
        if ai == 31:
            if major in (2, 3, 4, 5):
                raise TokenError(Reason.CBOR_INDEFINITE_LENGTH)
            raise TokenError(Reason.CBOR_MALFORMED, "indefinite length on a non-container")
        if ai > 27:
            raise TokenError(Reason.CBOR_MALFORMED, "reserved additional information")
        n = _ARG_LEN[ai]
        stop = pos + 1 + n
        if stop > self.end:
            raise TokenError(Reason.CBOR_TRUNCATED)
        arg = int.from_bytes(data[pos + 1 : stop], "big")
        if arg < _MIN_ARG[ai]:
            raise TokenError(Reason.CBOR_NON_MINIMAL)
        return major, arg, stop

    def item(self, pos: int, depth: int) -> int:
        """Check one data item starting at `pos`; return the position just after it."""
        limits = self.limits
        self.items += 1
        if self.items > limits.max_items:
            raise TokenError(Reason.CBOR_TOO_MANY_ITEMS)
        if depth > limits.max_depth:
            raise TokenError(Reason.CBOR_TOO_DEEP)
        major, arg, pos = self.head(pos)
        if major <= 1 or major == 7:
            return pos
        if major <= 3:
            stop = pos + arg
            if stop > self.end:
                raise TokenError(Reason.CBOR_TRUNCATED)
            return stop
        if major == 6:
            raise TokenError(Reason.CBOR_UNEXPECTED_TAG, f"tag {arg}")
        if arg > limits.max_container:
            raise TokenError(Reason.CBOR_TOO_MANY_ITEMS, "container too long")
        if major == 4:
            for _ in range(arg):
                pos = self.item(pos, depth + 1)
            return pos
        # Map: keys are integers or text, compared by their (unique, shortest-form) bytes.
        seen: set[bytes] = set()
        data = self.data
        for _ in range(arg):
            start = pos
            if pos < self.end and (data[pos] >> 5) not in (0, 1, 3):
                raise TokenError(Reason.CBOR_UNSUPPORTED_TYPE, "map key is not an integer or text")
            pos = self.item(pos, depth + 1)
            key = data[start:pos]
            if key in seen:
                raise TokenError(Reason.CBOR_DUPLICATE_KEY)
            seen.add(key)
            pos = self.item(pos, depth + 1)
        return pos


def scan(data: bytes, limits: CborLimits) -> None:
    """Prove that `data` is exactly one item of the accepted subset, within `limits`."""
    if len(data) > limits.max_bytes:
        raise TokenError(Reason.INPUT_TOO_LARGE, f"{len(data)} bytes")
    if not data:
        raise TokenError(Reason.CBOR_TRUNCATED, "empty")
    scanner = _Scanner(data, limits)
    pos = 0
    if data[0] >> 5 == 6:
        # The one tag the caller expects, only around the top item (not counted as a level).
        _, tag, pos = scanner.head(0)
        if tag != limits.top_tag:
            raise TokenError(Reason.CBOR_UNEXPECTED_TAG, f"tag {tag}")
    end = scanner.item(pos, 1)
    if end != len(data):
        raise TokenError(Reason.CBOR_TRAILING_BYTES)


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
