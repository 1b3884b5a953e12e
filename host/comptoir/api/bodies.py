"""JSON in and out: request bodies checked field by field (unknown fields refused), and the
representation of a transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from comptoir.billing import LineInput, TiersPayant
from comptoir.transactions import DispenseRequest, PersonRights, TransactionView

MAX_BODY = 64 * 1024


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


def transaction(tx: TransactionView) -> dict[str, Any]:
    """Names and birth dates are here (the pharmacist picks the person by them); the NIR only
    masked. The care sheet itself stays in the billing journal."""
    return {
        "id": tx.id,
        "state": str(tx.state),
        "created_at": tx.created_at,
        "updated_at": tx.updated_at,
        "presentation": {"presentation_id": tx.presentation_id, "board_id": tx.board_id,
                         "port": tx.port, "channel": tx.channel},
        "people": [
            {"person": p.index, "role": "insured" if p.index == 0 else "beneficiary",
             "rank": p.rank, "quality": p.quality, "family_name": p.family_name,
             "given_names": p.given_names, "birth_date": str(p.birth_date),
             "birth_rank": p.ref.birth_rank, "nir_masked": p.masked_nir,
             "rights": rights(tx.rights[p.index]) if tx.rights else None}
            for p in tx.people
        ],
        "chosen": tx.chosen,
        "rights_service": tx.rights_service,
        "care_sheet": None if tx.sheet is None else {
            "invoice_no": tx.sheet.invoice_no, "finess": tx.sheet.finess, "lot": tx.sheet.lot,
            "total": tx.sheet.total, "amo": tx.sheet.amo, "amc": tx.sheet.amc,
            "patient": tx.sheet.patient, "counter": tx.sheet.counter,
            "rights": None if tx.sheet.rights is None else rights(tx.sheet.rights)},
    }


def rights(r: PersonRights) -> dict[str, Any]:
    """One person's rights verdict: status, why, and the source and time it rests on."""
    return {"status": r.status, "billable": r.billable, "reason": r.reason, "source": r.source,
            "as_of": r.as_of,
            "as_of_iso": None if r.as_of is None else
            dt.datetime.fromtimestamp(r.as_of, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
