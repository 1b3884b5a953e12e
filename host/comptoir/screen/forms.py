"""What the page posts, read field by field (outside input): the person chosen, and a
dispensation as the pharmacist types it (catalogue codes and quantities, the prescriber, tiers
payant). The amounts are not the page's: billing computes them from the catalogue's prices."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from comptoir.billing import LineInput, TiersPayant
from comptoir.billing.identifiers import rpps_problem
from comptoir.transactions import DispenseRequest

from .catalogue import BY_CODE

MAX_LINES = 10
MAX_QUANTITY = 99
MAX_PEOPLE = 100


class FormError(ValueError):
    """A field the page sent is missing or wrong; `field` names it, the message is French."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _obj(body: Any, allowed: set[str], path: str = "") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FormError(path.rstrip("."), "requête mal formée")
    extra = sorted(set(body) - allowed)
    if extra:
        raise FormError(path + extra[0], f"champ inconnu : {extra[0][:40]}")
    return body


def _small_int(v: Any, field: str, low: int, high: int, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
        raise FormError(field, f"{what} : un nombre entier de {low} à {high}")
    return v


def person(body: Any) -> int:
    obj = _obj(body, {"person"})
    return _small_int(obj.get("person"), "person", 0, MAX_PEOPLE - 1, "personne")


@dataclass(frozen=True, slots=True)
class Line:
    cip13: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Dispensation:
    person: int
    lines: tuple[Line, ...]
    prescriber_rpps: str
    tiers_payant: TiersPayant


def dispensation(body: Any) -> Dispensation:
    obj = _obj(body, {"person", "lines", "prescriber_rpps", "tiers_payant"})
    who = _small_int(obj.get("person"), "person", 0, MAX_PEOPLE - 1, "personne")
    raw_lines = obj.get("lines")
    if not isinstance(raw_lines, list) or not 1 <= len(raw_lines) <= MAX_LINES:
        raise FormError("lines", f"de 1 à {MAX_LINES} lignes")
    lines = []
    for i, raw in enumerate(raw_lines):
        ln = _obj(raw, {"cip13", "quantity"}, f"lines[{i}].")
        code = ln.get("cip13")
        if not isinstance(code, str) or code not in BY_CODE:
            raise FormError(f"lines[{i}].cip13", f"ligne {i + 1} : code CIP13 absent du "
                                                 "catalogue")
        q = _small_int(ln.get("quantity"), f"lines[{i}].quantity", 1, MAX_QUANTITY,
                       f"ligne {i + 1}, quantité")
        lines.append(Line(code, q))
    rpps = obj.get("prescriber_rpps")
    if not isinstance(rpps, str) or rpps_problem(rpps) is not None:
        raise FormError("prescriber_rpps", "RPPS du prescripteur : 11 chiffres, clé valide")
    tp = _obj(obj.get("tiers_payant", {}), {"amo", "amc"}, "tiers_payant.")
    for k in ("amo", "amc"):
        if k in tp and not isinstance(tp[k], bool):
            raise FormError(f"tiers_payant.{k}", "tiers payant : oui ou non")
    return Dispensation(who, tuple(lines), rpps,
                        TiersPayant(amo=tp.get("amo", True), amc=tp.get("amc", False)))


def request(d: Dispensation, *, finess: str, pharmacist_rpps: str,
            today: dt.date) -> DispenseRequest:
    """The dispensation as the transaction store takes it (the API's DispenseRequest), priced
    from the catalogue; the parts are left to billing."""
    lines = tuple(LineInput(ln.cip13, ln.quantity, BY_CODE[ln.cip13].unit_price,
                            BY_CODE[ln.cip13].base, BY_CODE[ln.cip13].rate)
                  for ln in d.lines)
    return DispenseRequest(person=d.person, finess=finess, pharmacist_rpps=pharmacist_rpps,
                           prescriber_rpps=d.prescriber_rpps, prescribed_on=today,
                           dispensed_on=today, lines=lines, tiers_payant=d.tiers_payant)
