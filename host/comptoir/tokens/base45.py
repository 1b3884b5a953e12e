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


_MASK_GROUPS = 1100  # covers every text the verifier accepts (3076 characters)
_LOW_MAX = int.from_bytes(b"\0\0\xff" * _MASK_GROUPS, "big")


def _low_mask(groups: int) -> int:
    """0x0000FF repeated `groups` times."""
    if groups <= _MASK_GROUPS:
        return _LOW_MAX >> (24 * (_MASK_GROUPS - groups))
    return int.from_bytes(b"\0\0\xff" * groups, "big")


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
    groups = full // 3
    # Whole-string arithmetic instead of a Python loop per group (this runs on every scan):
    # read the digit values as one big-endian integer, so that group i is the 24-bit slot
    # c<<16 | d<<8 | e; pull the c, d and e of every slot out with one mask each and compute
    # c + 45*d + 2025*e (at most 91124 < 2**24) for all slots at once, without carries
    # between slots. A slot whose top byte is not 0 is a group out of range (> 0xFFFF); the
    # other two bytes of each slot are the two output bytes, big-endian.
    low = _low_mask(groups)
    v = int.from_bytes(vals[:full], "big")
    n = (v >> 16 & low) + 45 * (v >> 8 & low) + 2025 * (v & low)
    if n & (low << 16):
        raise Base45Error("group out of range")
    out = bytearray(n.to_bytes(full, "big"))
    del out[0::3]
    if full != len(vals):
        last = vals[full] + vals[full + 1] * 45
        if last > 0xFF:
            raise Base45Error("group out of range")
        out.append(last)
    return bytes(out)
