"""Check keys of the identifiers on a care sheet: FINESS and RPPS (Luhn), CIP13/ACL13 (EAN-13).

FINESS: 9 digits, Luhn over all 9. RPPS: 11 digits, Luhn over all 11 (domain.md §3: real
numbers pass both). CIP13 = 34009 + CIP7 + EAN-13 check; ACL13 = 3401 + 8 digits + check.
The `complete_*` helpers add a key, for generated (never real) identifiers.
"""

from __future__ import annotations

CIP13_PREFIX = "34009"
ACL13_PREFIX = "3401"


def _luhn_sum(digits: str) -> int:
    """Luhn sum of a string whose LAST digit is the check digit."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total


def luhn_ok(digits: str) -> bool:
    return digits.isascii() and digits.isdigit() and _luhn_sum(digits) % 10 == 0


def luhn_complete(body: str) -> str:
    """body + the Luhn check digit that makes it valid."""
    return body + str((10 - _luhn_sum(body + "0") % 10) % 10)


def ean13_check(first12: str) -> int:
    # Weights 1,3,1,3... from the left over the 12 first digits.
    s = sum((ord(c) - 48) * (3 if i % 2 else 1) for i, c in enumerate(first12))
    return (10 - s % 10) % 10


def ean13_complete(first12: str) -> str:
    return first12 + str(ean13_check(first12))


def finess_problem(value: object) -> str | None:
    """Why `value` is not a FINESS number, or None if it is one."""
    return _luhn_problem(value, 9)


def rpps_problem(value: object) -> str | None:
    return _luhn_problem(value, 11)


def _luhn_problem(value: object, length: int) -> str | None:
    if not isinstance(value, str) or len(value) != length or not (
        value.isascii() and value.isdigit()
    ):
        return f"must be {length} digits"
    if not luhn_ok(value):
        return "bad check key (Luhn)"
    return None


def product_code_problem(value: object) -> str | None:
    """Why `value` is not a CIP13 (drug) or ACL13 (other product) code, or None."""
    if not isinstance(value, str) or len(value) != 13 or not (value.isascii() and value.isdigit()):
        return "must be 13 digits"
    if not (value.startswith(CIP13_PREFIX) or value.startswith(ACL13_PREFIX)):
        return "must start with 34009 (CIP13) or 3401 (ACL13)"
    if ean13_check(value[:12]) != ord(value[12]) - 48:
        return "bad check digit (EAN-13)"
    return None
