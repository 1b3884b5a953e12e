"""Shared helpers for the billing tests: a valid baseline dispensation to break one field at a
time, and B2 file parsing."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from comptoir.billing import Dispensation, LineInput, PatientRef, TiersPayant, Transaction
from comptoir.billing.render import SPECS
from comptoir_tools.credentials.identities import family
from comptoir_tools.testkit.billing_synth import Synth, presentation

DAY = dt.date(2026, 6, 15)
SYNTH = Synth(7, pharmacies=2, families=8, today=DAY)
FINESS, PHARMACIST = SYNTH.pharmacies[0]
PRESCRIBER = SYNTH.prescribers[0]
CIP = SYNTH.products[0]
ACL = SYNTH.products[-1]


def adult_family(seed: int = 11, *, amc: bool = True, beneficiaries: int = 2) -> Any:
    return family(seed, beneficiaries=beneficiaries, nir_kind="mainland", today=DAY, amc=amc)


def dispensation(
    *,
    fam: Any = None,
    patient: PatientRef | None = None,
    lines: tuple[LineInput, ...] | None = None,
    tx: str = "TX-1",
    **changes: Any,
) -> Dispensation:
    """A valid dispensation for the insured person of `fam` (an adult: the franchise applies)."""
    fam = fam or adult_family()
    verified = presentation(fam, 1)
    ins = fam.insured
    patient = patient or PatientRef(ins.nir, ins.birth_date.to_int(), 1)
    base = Dispensation(
        transaction=Transaction(tx, verified, patient),
        finess=FINESS,
        pharmacist_rpps=PHARMACIST,
        prescriber_rpps=PRESCRIBER,
        prescribed_on=DAY - dt.timedelta(days=10),
        dispensed_on=DAY,
        lines=(LineInput(CIP, 2, 1000, 1000, 65),) if lines is None else lines,
        tiers_payant=TiersPayant(amo=True, amc=fam.amc is not None),
    )
    return dataclasses.replace(base, **changes)


def line(**changes: Any) -> LineInput:
    return dataclasses.replace(LineInput(CIP, 2, 1000, 1000, 65), **changes)


def parse_b2(path: Path) -> list[dict[str, int | str]]:
    """Every record of a transmission file, checked against its layout; 'type' added."""
    out = []
    text = path.read_text(encoding="ascii")
    assert text.endswith("\n")
    for raw in text.split("\n")[:-1]:
        rec = SPECS[raw[:3]].parse(raw)
        rec["type"] = raw[:3]
        out.append(rec)
    return out
