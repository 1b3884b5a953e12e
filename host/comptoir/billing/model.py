"""Billing types: what the daemon hands in (a Dispensation) and what the journal keeps (a
CareSheet). Amounts are integer cents everywhere. Personal fields are kept out of repr()."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import IntEnum

from comptoir.tokens.model import Verified
from comptoir.tokens.nir import mask_nir


class Nature(IntEnum):
    """Nature d'assurance (B2)."""

    ILLNESS = 10
    ALSACE_MOSELLE = 13
    MATERNITY = 30
    WORK_ACCIDENT = 41  # AT/MP
    PREVENTION = 90


@dataclass(frozen=True, slots=True)
class PatientRef:
    """The chosen beneficiary as the credential identifies it (Beneficiary.identity): the insured
    person's NIR, the patient's birth date (YYYYMMDD) and birth rank."""

    insured_nir: str = field(repr=False)
    birth_date: int = field(repr=False)
    birth_rank: int = 1


@dataclass(frozen=True, slots=True)
class Transaction:
    """One presentation bound to one chosen patient (issue 6 will produce these)."""

    transaction_id: str
    presentation: Verified = field(repr=False)
    patient: PatientRef


@dataclass(frozen=True, slots=True)
class TiersPayant:
    """Who the pharmacy bills directly instead of the patient paying at the counter."""

    amo: bool = True
    amc: bool = False

    @property
    def code(self) -> int:
        # B2 "destinataire du règlement": 00 none, 05 AMO only, 15 AMO + AMC, 25 AMC only.
        return (0, 25, 5, 15)[self.amo * 2 + self.amc]


@dataclass(frozen=True, slots=True)
class LineInput:
    """A dispensed product. The parts may be given by the dispensing software (then they are
    checked) or left None (then they are computed)."""

    code: str  # CIP13 (34009...) or ACL13 (3401...)
    quantity: int  # boxes
    unit_price: int  # cents, price charged per box
    base: int  # cents, reimbursement base per box (price or TFR)
    rate: int  # percent: 100, 65, 30 or 15
    amo: int | None = None
    amc: int | None = None
    patient: int | None = None


@dataclass(frozen=True, slots=True)
class Dispensation:
    transaction: Transaction
    finess: str  # the pharmacy, 9 digits with its Luhn key
    pharmacist_rpps: str
    prescriber_rpps: str
    prescribed_on: dt.date
    dispensed_on: dt.date
    lines: tuple[LineInput, ...]
    tiers_payant: TiersPayant = TiersPayant()
    nature: int = Nature.ILLNESS


@dataclass(frozen=True, slots=True)
class SheetLine:
    code: str
    quantity: int
    unit_price: int
    base: int
    rate: int
    total: int  # quantity * unit_price
    base_total: int  # quantity * base
    amo: int  # compulsory part
    amc: int  # complementary part
    patient: int  # patient's part
    franchise: int  # medical deductible, deducted later from AMO payments


@dataclass(frozen=True, slots=True)
class CareSheet:
    """A priced, checked care sheet. `invoice_no` is 0 until the journal numbers it."""

    transaction_id: str
    finess: str
    pharmacist_rpps: str
    prescriber_rpps: str
    prescribed_on: str  # ISO date
    dispensed_on: str
    nature: int
    insured_nir: str = field(repr=False)  # the ouvrant droit's NIR, labelled as such
    birth_date: int = field(repr=False)  # the patient's
    birth_rank: int = 1
    beneficiary_rank: int = 0  # 0 = the insured person themself
    quality: int = 0  # 0 insured, 2 spouse, 6 child, 9 other
    regime: int = 0
    caisse: int = 0
    centre: int = 0
    amc_number: int = 0  # 0 = no complementary contract
    amc_contract_type: int = 0
    tiers_payant: int = 0  # 0 / 5 / 15 / 25
    lines: tuple[SheetLine, ...] = ()
    total: int = 0
    amo: int = 0
    amc: int = 0
    patient: int = 0
    franchise: int = 0
    counter: int = 0  # what the patient pays at the counter (never the franchise)
    invoice_no: int = 0

    @property
    def masked_nir(self) -> str:
        return mask_nir(self.insured_nir)


@dataclass(frozen=True, slots=True)
class Lot:
    finess: str
    seq: int  # 1, 2, 3... per pharmacy; B2 shows seq % 1000 in its 3-digit field
    count: int
    first_invoice: int
    last_invoice: int
    opened_at: int  # unix seconds: first sheet recorded
    closed_at: int
    total: int
    amo: int
    amc: int
    patient: int
    franchise: int
    prev_hash: str
    hash: str
