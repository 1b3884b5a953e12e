"""JSON in: request bodies checked field by field (unknown fields refused). JSON out, the
representation of a transaction, is comptoir.http.transaction_json (the counter screen shows it
too); `bodies.transaction` and `bodies.rights` still name it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from comptoir.billing import LineInput, TiersPayant
from comptoir.http.transaction_json import rights, transaction
from comptoir.transactions import DispenseRequest

__all__ = ["BodyError", "beneficiary", "dispensation", "rights", "transaction"]

MAX_BODY = 64 * 1024
# What the API answers when a body cannot be read (comptoir.http.request_body; docs/api.md).
READ_REFUSALS = {
    "length_required": "send the body with a Content-Length",
    "bad_length": "Content-Length must be one decimal number",
    "too_large": f"body above {MAX_BODY} bytes",
    "timeout": "the body stopped coming: nothing was done",
    "short": "body shorter than its Content-Length",
}


class BodyError(ValueError):
    def __init__(self, detail: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.fields = fields


def _int(obj: dict[str, Any], key: str, path: str, *, required: bool = True) -> int | None:
    if key not in obj:
        if required:
            raise BodyError(f"{path}{key}: required", (path + key,))
        return None
    v = obj[key]
    if not isinstance(v, int) or isinstance(v, bool):
        raise BodyError(f"{path}{key}: must be an integer", (path + key,))
    return v


def _str(obj: dict[str, Any], key: str) -> str:
    v = obj.get(key)
    if not isinstance(v, str):
        raise BodyError(f"{key}: required string", (key,))
    return v


def _date(obj: dict[str, Any], key: str) -> dt.date:
    try:
        return dt.date.fromisoformat(_str(obj, key))
    except ValueError:
        raise BodyError(f"{key}: must be a date YYYY-MM-DD", (key,)) from None


def _only(obj: Any, allowed: set[str], path: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BodyError(f"{path or 'body'}: must be a JSON object", (path.rstrip("."),))
    extra = sorted(set(obj) - allowed)
    if extra:
        raise BodyError(f"{path}{extra[0]}: unknown field", tuple(path + e for e in extra))
    return obj


def beneficiary(body: Any) -> object:
    """{"person": n}: returns n unchecked beyond presence (the store checks the range)."""
    obj = _only(body, {"person"}, "")
    if "person" not in obj:
        raise BodyError("person: required", ("person",))
    return obj["person"]


_DISPENSE = {"person", "finess", "pharmacist_rpps", "prescriber_rpps", "prescribed_on",
             "dispensed_on", "nature", "tiers_payant", "lines"}
_LINE = {"code", "quantity", "unit_price", "base", "rate", "amo", "amc", "patient"}


def dispensation(body: Any) -> DispenseRequest:
    obj = _only(body, _DISPENSE, "")
    person = _int(obj, "person", "")
    tp_obj = _only(obj.get("tiers_payant", {}), {"amo", "amc"}, "tiers_payant.")
    for k in ("amo", "amc"):
        if k in tp_obj and not isinstance(tp_obj[k], bool):
            raise BodyError(f"tiers_payant.{k}: must be true or false", (f"tiers_payant.{k}",))
    lines_in = obj.get("lines")
    if not isinstance(lines_in, list) or not lines_in:
        raise BodyError("lines: required, a non-empty array", ("lines",))
    lines = []
    for i, raw in enumerate(lines_in):
        p = f"lines[{i}]."
        ln = _only(raw, _LINE, p)
        if not isinstance(ln.get("code"), str):
            raise BodyError(f"{p}code: required string", (p + "code",))
        lines.append(LineInput(
            ln["code"], *(_int(ln, k, p) or 0 for k in ("quantity", "unit_price", "base", "rate")),
            *(_int(ln, k, p, required=False) for k in ("amo", "amc", "patient"))))
    nature = _int(obj, "nature", "", required=False)
    assert person is not None
    return DispenseRequest(
        person=person, finess=_str(obj, "finess"), pharmacist_rpps=_str(obj, "pharmacist_rpps"),
        prescriber_rpps=_str(obj, "prescriber_rpps"), prescribed_on=_date(obj, "prescribed_on"),
        dispensed_on=_date(obj, "dispensed_on"), lines=tuple(lines),
        tiers_payant=TiersPayant(amo=tp_obj.get("amo", True), amc=tp_obj.get("amc", False)),
        nature=10 if nature is None else nature)
