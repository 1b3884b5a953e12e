"""From a Dispensation to a checked, priced CareSheet. Every broken rule is reported with the
field it is about; nothing is half-built."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

from comptoir.tokens.model import AmcContract, BirthDate, Credential, Period
from comptoir.tokens.nir import mask_nir

from . import amounts
from .errors import BillingError, FieldError
from .identifiers import CIP13_PREFIX, finess_problem, product_code_problem, rpps_problem
from .model import CareSheet, Dispensation, LineInput, Nature, PatientRef, SheetLine

TRANSACTION_ID = re.compile(r"[A-Za-z0-9._-]{1,36}")
MAX_LINES = 99
MAX_QUANTITY = 999
MAX_UNIT_PRICE = 9_999_999  # cents: the 8-digit B2 fields must hold quantity x price
MAX_SHEET_TOTAL = 99_999_999
PRESCRIPTION_VALID_DAYS = 366
CSS_CONTRACT = 89
ADULT_AGE = 18
# Natures paid at 100 % whatever the product's usual rate.
FULL_RATE_NATURES = frozenset({Nature.MATERNITY, Nature.WORK_ACCIDENT, Nature.PREVENTION})


@dataclass(frozen=True, slots=True)
class Person:
    """Someone a credential covers, as billing sees them."""

    ref: PatientRef
    rank: int  # 0 = the insured person
    quality: int
    birth: BirthDate
    rights: tuple[Period, ...]


def persons(credential: Credential) -> list[Person]:
    insured = credential.insured
    out = [
        Person(
            PatientRef(insured.nir, insured.birth_date.to_int(), 1),
            0,
            0,
            insured.birth_date,
            insured.rights,
        )
    ]
    for b in credential.beneficiaries:
        out.append(
            Person(
                PatientRef(b.insured_nir, b.birth_date.to_int(), b.birth_rank),
                b.rank,
                b.quality,
                b.birth_date,
                b.rights,
            )
        )
    return out


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def age_on(birth: BirthDate, day: dt.date) -> int:
    # Unknown month/day (incomplete civil status) count as 31 December: the patient is taken
    # as young as they can be, so an exemption for minors is never wrongly refused.
    month, dd = (birth.month, birth.day) if birth.month else (12, 31)
    dd = dd or 31
    return day.year - birth.year - ((day.month, day.day) < (month, dd))


def _amc_valid(amc: AmcContract | None, day: object) -> bool:
    return amc is not None and isinstance(day, dt.date) and amc.period.covers(day)


def build_care_sheet(d: Dispensation, *, franchise_used: int = 0) -> CareSheet:
    """Check `d` and price it. `franchise_used`: franchise already charged to this patient in the
    dispensation's calendar year (the journal knows). Raises BillingError naming every bad field."""
    errors: list[FieldError] = []

    def bad(field: str, reason: str) -> None:
        errors.append(FieldError(field, reason))

    tx = d.transaction
    if not isinstance(tx.transaction_id, str) or not TRANSACTION_ID.fullmatch(tx.transaction_id):
        bad("transaction.transaction_id", "must be 1-36 characters A-Z a-z 0-9 . _ -")
    for name, problem in (
        ("finess", finess_problem(d.finess)),
        ("pharmacist_rpps", rpps_problem(d.pharmacist_rpps)),
        ("prescriber_rpps", rpps_problem(d.prescriber_rpps)),
    ):
        if problem:
            bad(name, problem)

    day = d.dispensed_on
    if not isinstance(day, dt.date):
        bad("dispensed_on", "must be a date")
    if not isinstance(d.prescribed_on, dt.date):
        bad("prescribed_on", "must be a date")
    elif isinstance(day, dt.date):
        if d.prescribed_on > day:
            bad("prescribed_on", "after the dispensation date")
        elif (day - d.prescribed_on).days > PRESCRIPTION_VALID_DAYS:
            bad("prescribed_on", "prescription older than a year")
    try:
        nature = Nature(d.nature)
    except ValueError:
        bad("nature", "must be 10, 13, 30, 41 or 90")
        nature = Nature.ILLNESS

    credential = tx.presentation.credential
    person = next((p for p in persons(credential) if p.ref == tx.patient), None)
    if person is None:
        bad("transaction.patient", "not a person of the transaction's credential")
    elif isinstance(day, dt.date) and not any(r.covers(day) for r in person.rights):
        bad("transaction.patient", "no rights on the dispensation date")

    amc = credential.amc
    amc_ok = _amc_valid(amc, day)
    if d.tiers_payant.amc and not amc_ok:
        bad("tiers_payant.amc", "no complementary contract valid on the dispensation date")
    elif d.tiers_payant.amc and amc is not None and amc.tiers_payant not in (15, 25):
        bad("tiers_payant.amc", "the complementary contract does not allow tiers payant")

    if not isinstance(d.lines, tuple | list) or not 1 <= len(d.lines) <= MAX_LINES:
        bad("lines", f"must hold 1 to {MAX_LINES} lines")
        raise BillingError(errors)

    splits: list[amounts.Split | None] = [
        _check_line(i, line, nature, amc_ok, bad) for i, line in enumerate(d.lines)
    ]
    total = sum(s.total for s in splits if s)
    if total > MAX_SHEET_TOTAL:
        bad("total", f"above {MAX_SHEET_TOTAL} cents")
    if errors:
        raise BillingError(errors)
    assert person is not None and isinstance(day, dt.date)

    exempt = (
        nature == Nature.MATERNITY
        or age_on(person.birth, day) < ADULT_AGE
        or (amc_ok and amc is not None and amc.contract_type == CSS_CONTRACT)
    )
    boxes = [
        0 if exempt or not line.code.startswith(CIP13_PREFIX) else line.quantity
        for line in d.lines
    ]
    franchises = amounts.allocate_franchise(boxes, franchise_used)
    lines = tuple(
        SheetLine(
            line.code, line.quantity, line.unit_price, line.base, line.rate,
            s.total, s.base_total, s.amo, s.amc, s.patient, f,
        )
        for line, s, f in zip(d.lines, splits, franchises, strict=True)
        if s is not None
    )
    amo_sum = sum(x.amo for x in lines)
    amc_sum = sum(x.amc for x in lines)
    patient_sum = sum(x.patient for x in lines)
    aff = credential.affiliation
    tp = d.tiers_payant
    return CareSheet(
        transaction_id=tx.transaction_id,
        finess=d.finess,
        pharmacist_rpps=d.pharmacist_rpps,
        prescriber_rpps=d.prescriber_rpps,
        prescribed_on=d.prescribed_on.isoformat(),
        dispensed_on=day.isoformat(),
        nature=int(nature),
        insured_nir=person.ref.insured_nir,
        birth_date=person.ref.birth_date,
        birth_rank=person.ref.birth_rank,
        beneficiary_rank=person.rank,
        quality=person.quality,
        regime=aff.regime,
        caisse=aff.caisse,
        centre=aff.centre,
        amc_number=amc.amc_number if amc_ok and amc else 0,
        amc_contract_type=amc.contract_type if amc_ok and amc else 0,
        tiers_payant=tp.code,
        lines=lines,
        total=total,
        amo=amo_sum,
        amc=amc_sum,
        patient=patient_sum,
        franchise=sum(franchises),
        counter=amounts.counter_amount(amo_sum, amc_sum, patient_sum, tp.amo, tp.amc),
    )


def _check_line(
    i: int, line: LineInput, nature: Nature, amc_ok: bool, bad: Callable[[str, str], None]
) -> amounts.Split | None:
    f = f"lines[{i}]"
    ok = True
    problem = product_code_problem(line.code)
    if problem:
        bad(f"{f}.code", problem)
        ok = False
    for name, value, low, high in (
        ("quantity", line.quantity, 1, MAX_QUANTITY),
        ("unit_price", line.unit_price, 1, MAX_UNIT_PRICE),
        ("base", line.base, 1, MAX_UNIT_PRICE),
    ):
        if not _is_int(value):
            bad(f"{f}.{name}", "must be an integer (cents for amounts)")
            ok = False
        elif value < 0:
            bad(f"{f}.{name}", "negative")
            ok = False
        elif not low <= value <= high:
            bad(f"{f}.{name}", f"must be {low} to {high}")
            ok = False
    if ok and line.base > line.unit_price:
        bad(f"{f}.base", "reimbursement base above the unit price")
        ok = False
    if line.rate not in amounts.RATES or not _is_int(line.rate):
        bad(f"{f}.rate", "must be 100, 65, 30 or 15")
        ok = False
    elif nature in FULL_RATE_NATURES and line.rate != 100:
        bad(f"{f}.rate", f"nature {int(nature)} is paid at 100 %")
        ok = False
    given = {"amo": line.amo, "amc": line.amc, "patient": line.patient}
    for name, value in given.items():
        if value is not None and not _is_int(value):
            bad(f"{f}.{name}", "must be an integer number of cents")
            ok = False
        elif value is not None and value < 0:
            bad(f"{f}.{name}", "negative")
            ok = False
    if not ok:
        return None
    split = amounts.split_line(line.quantity, line.unit_price, line.base, line.rate, amc_ok)
    if all(v is None for v in given.values()):
        return split
    if None in given.values():
        bad(f"{f}.parts", "give all three parts (amo, amc, patient) or none")
        return None
    amo, amc, patient = line.amo or 0, line.amc or 0, line.patient or 0
    if amo + amc + patient != split.total:
        bad(f"{f}.parts", f"amo + amc + patient = {amo + amc + patient}, total is {split.total}")
        return None
    if amo != split.amo:
        bad(f"{f}.amo", f"must be {split.amo} (base {split.base_total} x {line.rate} %)")
        return None
    if amc and not amc_ok:
        bad(f"{f}.amc", "no complementary contract valid on the dispensation date")
        return None
    return amounts.Split(split.total, split.base_total, amo, amc, patient)


def mask(sheet: CareSheet) -> str:
    """A log-safe one-line description."""
    return f"invoice {sheet.invoice_no} tx {sheet.transaction_id} nir {mask_nir(sheet.insured_nir)}"
