"""What a transaction is, as its readers get it: its state, its people, the rights each has,
its care sheet. Values only; the store (store.py) makes them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from comptoir.billing import LineInput, Nature, PatientRef, TiersPayant, persons
from comptoir.rights import RightsAnswer
from comptoir.tokens.model import Affiliation, AmcContract, BirthDate, Verified
from comptoir.tokens.nir import mask_nir


class State(StrEnum):
    AWAITING_BENEFICIARY = "awaiting_beneficiary"
    READY = "ready"
    DISPENSED = "dispensed"
    CANCELLED = "cancelled"



@dataclass(frozen=True, slots=True)
class PersonRights:
    """One person's rights verdict. `source`/`as_of`: of the AMO rights it rests on (what a
    care sheet billed on it records). Never personal data."""

    status: str  # comptoir.rights.Status value
    reason: str
    source: str | None  # "credential" | "service" | None
    as_of: int | None  # unix seconds when that source asserted the rights
    billable: bool

    @classmethod
    def of(cls, answer: RightsAnswer) -> PersonRights:
        return cls(answer.status.value, answer.reason,
                   None if answer.source is None else answer.source.label,
                   answer.obtained_at, answer.billable)



@dataclass(frozen=True, slots=True)
class Person:
    """Someone the credential covers. `index` is stable for the transaction's life."""

    index: int
    rank: int  # 0 = the insured person, else the beneficiary's rank in the credential
    quality: int  # 0 insured, 2 spouse, 6 child, 9 other
    family_name: str = field(repr=False)
    given_names: str = field(repr=False)
    birth_date: BirthDate = field(repr=False)
    ref: PatientRef = field(repr=False)

    @property
    def masked_nir(self) -> str:
        return mask_nir(self.ref.insured_nir)


@dataclass(frozen=True, slots=True)
class SheetRef:
    invoice_no: int
    finess: str
    lot: int | None  # None while the lot is open
    total: int
    amo: int
    amc: int
    patient: int
    counter: int
    rights: PersonRights | None = None  # the rights basis it was billed on (None: not checked)


@dataclass(frozen=True, slots=True)
class TransactionView:
    id: str
    state: State
    created_at: float
    updated_at: float
    presentation_id: str
    board_id: str
    port: str
    channel: str
    people: tuple[Person, ...]  # empty once the personal data was purged
    chosen: int | None
    sheet: SheetRef | None = None
    # Per person (aligned with `people`) while the transaction is open and a rights cache is
    # attached; empty otherwise. `rights_service`: what the rights service said (None: not
    # asked by this process).
    rights: tuple[PersonRights, ...] = ()
    rights_service: str | None = None
    # The credential's paying fund (AMO) and complementary contract (AMC), while its personal
    # data is kept (None once purged).
    affiliation: Affiliation | None = None
    amc: AmcContract | None = None

    @property
    def chosen_person(self) -> Person | None:
        return None if self.chosen is None or not self.people else self.people[self.chosen]


@dataclass(frozen=True, slots=True)
class DispenseRequest:
    """What the dispensing software sends; the patient comes from the transaction."""

    person: int
    finess: str
    pharmacist_rpps: str
    prescriber_rpps: str
    prescribed_on: dt.date
    dispensed_on: dt.date
    lines: tuple[LineInput, ...]
    tiers_payant: TiersPayant = field(default_factory=TiersPayant)
    nature: int = Nature.ILLNESS


def people_of(v: Verified) -> tuple[Person, ...]:
    """The credential's people in a fixed order: the insured person, then beneficiaries."""
    names = [(v.insured.family_name, v.insured.given_names)]
    names += [(b.family_name, b.given_names) for b in v.beneficiaries]
    return tuple(
        Person(i, p.rank, p.quality, fam, given, p.birth, p.ref)
        for i, (p, (fam, given)) in enumerate(zip(persons(v.credential), names, strict=True))
    )

