"""The strict readers of single claim values (unsigned integers, byte strings, names, arrays,
maps with a closed key set, days, periods, exemptions, birth dates) and the limits they apply.
Each refuses with Reason.CLAIMS_MALFORMED: a wrong type, size or key is never let through."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .model import BirthDate, Exemption, Period
from .reasons import Reason, TokenError

TYP = -1  # the key of the signed token type, shared by every Comptoir token
MAX_PERIODS = 8
MAX_NAME = 64
EPOCH = dt.date(1970, 1, 1)  # days in claims count from here


# --- strict readers -------------------------------------------------------------------------


def malformed(what: str) -> TokenError:
    return TokenError(Reason.CLAIMS_MALFORMED, what)


def uint(value: Any, what: str, maximum: int = 2**63 - 1) -> int:
    # bool is an int subclass in Python; CBOR true must not pass as 1.
    if type(value) is not int or not 0 <= value <= maximum:
        raise malformed(what)
    return value


def bstr(value: Any, what: str, minimum: int, maximum: int) -> bytes:
    if not isinstance(value, bytes) or not minimum <= len(value) <= maximum:
        raise malformed(what)
    return value


def text(value: Any, what: str) -> str:
    """A name: 1..MAX_NAME bytes of UTF-8 (CDDL `tstr .size` counts bytes, not characters),
    every character printable in Python's sense (`str.isprintable`): no character of Unicode
    general category Cc, Cf, Cs, Co, Cn (control, format, surrogate, private use, unassigned),
    Zl, Zp, and no separator Zs other than U+0020 SPACE. Names end up on screens and in
    billing files, where they must not be able to inject or hide anything."""
    if not isinstance(value, str) or not value.isprintable():
        raise malformed(what)
    # After isprintable: no surrogate is left, so the encoding cannot fail.
    if not 0 < len(value.encode("utf-8")) <= MAX_NAME:
        raise malformed(what)
    return value


def array(value: Any, what: str, maximum: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > maximum:
        raise malformed(what)
    return value


def claims_map(value: Any, what: str, allowed: frozenset[int], required: frozenset[int]) -> dict:
    if not isinstance(value, dict):
        raise malformed(what)
    keys = value.keys()
    if not keys <= allowed:
        raise malformed(f"{what}: unknown key")
    if not required <= keys:
        raise malformed(f"{what}: missing key")
    return value


def check_typ(claims: Any, expected: int) -> None:
    if not isinstance(claims, dict) or claims.get(TYP) != expected or type(claims[TYP]) is not int:
        raise TokenError(Reason.TOKEN_TYPE_MISMATCH, f"expected typ {expected}")


def day(value: Any, what: str) -> dt.date:
    return EPOCH + dt.timedelta(days=uint(value, what, 200_000))


def period(value: Any, what: str) -> Period:
    pair = array(value, what, 2)
    if len(pair) != 2:
        raise malformed(what)
    period = Period(day(pair[0], what), day(pair[1], what))
    if period.start > period.end:
        raise malformed(what)
    return period


def periods(value: Any, what: str) -> tuple[Period, ...]:
    return tuple(period(p, what) for p in array(value, what, MAX_PERIODS))


def exemptions(value: Any) -> tuple[Exemption, ...]:
    out = []
    for item in array(value, "exemptions", MAX_PERIODS):
        triple = array(item, "exemption", 3)
        if len(triple) != 3:
            raise malformed("exemption")
        code = uint(triple[0], "exemption code", 99)
        out.append(Exemption(code, period(triple[1:], "exemption")))
    return tuple(out)


def birth_date(value: Any, today: dt.date) -> BirthDate | None:
    """A plausible civil birth date, or None. Unknown month means unknown day."""
    if type(value) is not int or not 18_700_000 <= value <= 99_991_231:
        return None
    bd = BirthDate.from_int(value)
    if bd.month > 12 or bd.day > 31 or (bd.month == 0 and bd.day != 0):
        return None
    if bd.month and bd.day:
        try:
            if dt.date(bd.year, bd.month, bd.day) > today:
                return None
        except ValueError:
            return None
    elif (bd.year, bd.month) > (today.year, today.month):
        return None
    return bd
