"""What a verified token says, as typed values. Personal fields are kept out of repr()."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric import ec

from .nir import mask_nir
from .reasons import Reason


class Channel(StrEnum):
    QR = "qr"
    NFC = "nfc"


@dataclass(frozen=True, slots=True)
class BirthDate:
    """A civil-status birth date; month and day are 0 when unknown (incomplete civil status)."""

    year: int
    month: int
    day: int

    @classmethod
    def from_int(cls, value: int) -> BirthDate:
        return cls(value // 10000, value // 100 % 100, value % 100)

    def to_int(self) -> int:
        return self.year * 10000 + self.month * 100 + self.day

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"


@dataclass(frozen=True, slots=True)
class Period:
    """A closed interval of days."""

    start: dt.date
    end: dt.date

    def covers(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True, slots=True)
class Exemption:
    code: int  # exemption category (e.g. ALD); the B2 one-character code is not public
    period: Period


@dataclass(frozen=True, slots=True)
class Affiliation:
    regime: int  # grand régime, 2 digits (01 general, 02 MSA, ...)
    caisse: int  # paying fund, 3 digits (751 = CPAM Paris)
    centre: int  # 4 digits

    @property
    def codes(self) -> tuple[str, str, str]:
        return f"{self.regime:02d}", f"{self.caisse:03d}", f"{self.centre:04d}"


@dataclass(frozen=True, slots=True)
class InsuredPerson:
    """The ouvrant droit: the person whose NIR the credential carries."""

    nir: str = field(repr=False)  # 15 characters, key included, checked
    family_name: str = field(repr=False)
    given_names: str = field(repr=False)
    birth_date: BirthDate = field(repr=False)
    rights: tuple[Period, ...] = ()
    exemptions: tuple[Exemption, ...] = ()

    @property
    def masked_nir(self) -> str:
        return mask_nir(self.nir)


@dataclass(frozen=True, slots=True)
class Beneficiary:
    """An ayant droit. Has no NIR of its own here: it is identified by the insured person's NIR
    (`insured_nir`, labelled as such) plus its own birth date and birth rank; `rank` orders the
    beneficiaries of one credential."""

    insured_nir: str = field(repr=False)
    rank: int
    birth_date: BirthDate = field(repr=False)
    birth_rank: int
    quality: int  # qualité: 2 spouse, 6 child, 9 other (SESAM-Vitale codes)
    family_name: str = field(repr=False)
    given_names: str = field(repr=False)
    rights: tuple[Period, ...] = ()
    exemptions: tuple[Exemption, ...] = ()

    @property
    def identity(self) -> tuple[str, int, int]:
        """(insured NIR, birth date as YYYYMMDD, birth rank): what billing identifies it by."""
        return self.insured_nir, self.birth_date.to_int(), self.birth_rank


@dataclass(frozen=True, slots=True)
class AmcContract:
    """Complementary insurance (AMC) contract, for tiers payant on the complementary part."""

    amc_number: int
    contract_type: int  # e.g. 89 = complémentaire santé solidaire
    period: Period
    tiers_payant: int  # 0 none, 5 AMO only, 15 AMO + AMC, 25 AMC only


@dataclass(frozen=True, slots=True)
class Credential:
    credential_id: bytes
    issued_at: int
    not_before: int
    expires_at: int
    insured: InsuredPerson
    beneficiaries: tuple[Beneficiary, ...]
    affiliation: Affiliation
    amc: AmcContract | None
    activation_generation: int
    status_index: int
    device_key: ec.EllipticCurvePublicKey = field(repr=False)


@dataclass(frozen=True, slots=True)
class Verified:
    """An accepted presentation."""

    channel: Channel
    credential: Credential
    issuer: str  # the issuer certificate's subject
    presentation_id: bytes
    presented_at: int
    counter: int
    warnings: tuple[str, ...] = ()  # e.g. "trust_list_in_grace"
    ok: bool = field(default=True, init=False)

    @property
    def insured(self) -> InsuredPerson:
        return self.credential.insured

    @property
    def beneficiaries(self) -> tuple[Beneficiary, ...]:
        return self.credential.beneficiaries

    @property
    def credential_id(self) -> bytes:
        return self.credential.credential_id


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Reason
    detail: str = ""  # never personal data
    ok: bool = field(default=False, init=False)


Result = Verified | Refused
