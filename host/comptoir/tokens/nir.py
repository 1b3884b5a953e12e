"""The NIR (French social security number) as it really is, and how to show it in logs.

Layout (15 characters): sex 1, year 2, month 2, département 2 (3 for 97x/98x, then commune 2;
99 = born abroad, then a country code), commune 3, order 3, key 2.
Accepted on purpose: pseudo-months (20, 30-42, 50+) for incomplete civil status, Corsica 2A/2B,
overseas 97x/98x, abroad 99, provisional and temporary numbers (sex digit 3-8; a NIA is built
like a NIR, so its format cannot tell it apart). The key is 97 - (N mod 97), with 2A -> 19 and
2B -> 18 before computing N.
"""

from __future__ import annotations

from dataclasses import dataclass

from .reasons import Reason, TokenError

_DIGITS = frozenset("0123456789")


@dataclass(frozen=True, slots=True)
class NirInfo:
    sex: int
    year2: int
    month: int
    department: str
    place: str  # commune code, or country code when born abroad
    key: int

    @property
    def pseudo_month(self) -> bool:
        return not 1 <= self.month <= 12

    @property
    def born_abroad(self) -> bool:
        return self.department == "99"


def _numeric(first13: str) -> int:
    return int(first13[:5] + first13[5:7].replace("2A", "19").replace("2B", "18") + first13[7:])


def nir_key(first13: str) -> int:
    """The 2-digit key of the 13 first characters."""
    return 97 - _numeric(first13) % 97


def with_key(first13: str) -> str:
    return f"{first13}{nir_key(first13):02d}"


def _month_ok(month: int) -> bool:
    return 1 <= month <= 12 or month == 20 or 30 <= month <= 42 or month >= 50


def parse_nir(nir: object) -> NirInfo:
    """Check a 15-character NIR (with key). Raises TokenError(NIR_MALFORMED or NIR_BAD_KEY)."""
    if not isinstance(nir, str) or len(nir) != 15:
        raise TokenError(Reason.NIR_MALFORMED, "length")
    dept2 = nir[5:7]
    rest = nir[:5] + nir[7:]
    if not set(rest) <= _DIGITS or not (dept2 in ("2A", "2B") or set(dept2) <= _DIGITS):
        raise TokenError(Reason.NIR_MALFORMED, "characters")
    sex = int(nir[0])
    month = int(nir[3:5])
    if not 1 <= sex <= 8:
        raise TokenError(Reason.NIR_MALFORMED, "sex digit")
    if not _month_ok(month):
        raise TokenError(Reason.NIR_MALFORMED, "month")
    if dept2 == "00":
        raise TokenError(Reason.NIR_MALFORMED, "department")
    if dept2 in ("97", "98"):
        department, place = nir[5:8], nir[8:10]
    elif dept2 == "99":
        department, place = "99", nir[7:10]
    else:
        department, place = dept2, nir[7:10]
    key = int(nir[13:15])
    if not 1 <= key <= 97:
        raise TokenError(Reason.NIR_MALFORMED, "key out of range")
    if nir_key(nir[:13]) != key:
        raise TokenError(Reason.NIR_BAD_KEY)
    return NirInfo(sex, int(nir[1:3]), month, department, place, key)


def mask_nir(nir: object) -> str:
    """What logs may show of a NIR: its first character and its last two."""
    if not isinstance(nir, str) or len(nir) < 6:
        return "***"
    return nir[0] + "*" * (len(nir) - 3) + nir[-2:]
