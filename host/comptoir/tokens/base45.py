"""Base45 (RFC 9285): the QR alphanumeric-mode encoding used by the EU DCC.

Written here (30 lines) rather than taken from the `base45` package: that package is unmaintained
since 2022 and this is the one place where a strict decoder matters (every input is hostile).
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_INVALID = b"\xff"
_TABLE = bytes(ALPHABET.find(chr(i)) & 0xFF for i in range(256))  # value, or 0xFF if not in it


class Base45Error(ValueError):
    pass


def encode(data: bytes) -> str:
    out: list[str] = []
    a = ALPHABET
    for i in range(0, len(data) - 1, 2):
        n = (data[i] << 8) | data[i + 1]
        e, rest = divmod(n, 45 * 45)
        d, c = divmod(rest, 45)
        out.append(a[c] + a[d] + a[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out.append(a[c] + a[d])
    return "".join(out)


def decode(text: str) -> bytes:
    """Strict: only the 45 alphabet characters, and every group in range, so a byte string has
    exactly one encoding (a decoded string re-encodes to itself)."""
    if len(text) % 3 == 1:
        raise Base45Error("length")
    try:
        vals = text.encode("ascii").translate(_TABLE)
    except UnicodeEncodeError:
        raise Base45Error("character outside the alphabet") from None
    if _INVALID in vals:
        raise Base45Error("character outside the alphabet")
    full = len(vals) - len(vals) % 3
    # Whole-string arithmetic instead of a Python loop per group (3x faster; this runs on every
    # scan): lay the c, d and e digits of all groups in 24-bit little-endian slots of three big
    # integers, so c + 45*d + 2025*e (at most 91124 < 2**24) is computed for every slot at once
    # without carries between slots.
    slots = []
    for k in range(3):
        lane = bytearray(full)
        lane[0::3] = vals[k:full:3]
        slots.append(int.from_bytes(lane, "little"))
    n = (slots[0] + 45 * slots[1] + 2025 * slots[2]).to_bytes(full, "little")
    if n[2::3].strip(b"\0"):
        raise Base45Error("group out of range")
    out = bytearray(2 * (full // 3))
    out[0::2] = n[1::3]
    out[1::2] = n[0::3]
    if full != len(vals):
        last = vals[full] + vals[full + 1] * 45
        if last > 0xFF:
            raise Base45Error("group out of range")
        out.append(last)
    return bytes(out)
