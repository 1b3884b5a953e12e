"""The rights of one beneficiary, each part with its source and the time it was obtained.

A beneficiary is identified the way billing identifies it: the insured person's NIR (the
ouvrant droit's, also for a child or a spouse), the beneficiary's birth date and birth rank,
and its qualité. The qualité is part of the key because the credential gives the insured
person no birth rank: without it a spouse born the same day as the insured would collide
with the insured. Names are not part of the key (they change on marriage).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import astuple, dataclass, field, fields, is_dataclass, replace
from enum import IntEnum, StrEnum
from typing import Any, Generic, TypeVar

from comptoir.tokens.model import Affiliation, AmcContract, Exemption, Period
from comptoir.tokens.nir import mask_nir

QUALITY_INSURED = 0  # the ouvrant droit; 2 spouse, 6 child, 9 other as in the credential


class Source(IntEnum):
    """Where a fact came from. The value breaks ties between facts obtained at the same second
    (higher wins), so that merging never depends on arrival order."""

    CREDENTIAL = 1  # signed by the insurer inside the patient's app
    SERVICE = 2  # the insurer's rights service (ADRi-like), online
    STATUS_LIST = 3  # the issuer's status list of deactivated phones
    OPPOSITION = 4  # the opposition list of lost or stolen means

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class BeneficiaryId:
    nir: str = field(repr=False)  # the insured person's NIR, 15 characters
    birth_date: int = field(repr=False)  # YYYYMMDD (month/day 0 when unknown)
    birth_rank: int
    quality: int

    def canonical(self) -> bytes:
        """Unambiguous bytes for the keyed hash: fixed-width fields, no separators to confuse."""
        return (
            f"{self.nir:15s}|{self.birth_date:08d}|{self.birth_rank:03d}|{self.quality:02d}"
        ).encode("ascii")

    @property
    def masked(self) -> str:
        return f"{mask_nir(self.nir)}/r{self.birth_rank}/q{self.quality}"


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sourced(Generic[T]):
    """One fact with its provenance. `obtained_at` is when the source asserted it (epoch s)."""

    value: T
    source: Source
    obtained_at: int

    def order(self) -> tuple[int, int]:
        return self.obtained_at, int(self.source)


@dataclass(frozen=True, slots=True)
class Css:
    """Complémentaire santé solidaire (contract type 89), free or with a participation."""

    period: Period
    participative: bool = False


@dataclass(frozen=True, slots=True)
class Names:
    family_name: str = field(repr=False)
    given_names: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RightsRecord:
    """Everything cached about one beneficiary. A part left None is not known yet.
    `amo` is the tuple of AMO rights periods: an empty tuple is a fact (no rights)."""

    who: BeneficiaryId
    names: Sourced[Names] | None = None
    amo: Sourced[tuple[Period, ...]] | None = None
    affiliation: Sourced[Affiliation] | None = None
    exemptions: Sourced[tuple[Exemption, ...]] | None = None
    css: Sourced[Css | None] | None = None
    amc: Sourced[AmcContract | None] | None = None
    credential_id: Sourced[bytes] | None = None  # the last credential that spoke for them

    def parts(self) -> dict[str, Sourced[Any] | None]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "who"}


PART_NAMES = tuple(f.name for f in fields(RightsRecord) if f.name != "who")


def _newer(a: Sourced[Any] | None, b: Sourced[Any] | None) -> Sourced[Any] | None:
    if a is None:
        return b
    if b is None:
        return a
    if b.order() != a.order():
        return b if b.order() > a.order() else a
    # Same second, same source, different values: pick by a total order on the value so that
    # the result is the same whatever the arrival order.
    return b if _canon(b.value) > _canon(a.value) else a


def _canon(value: Any) -> str:
    # astuple reaches the fields hidden from repr (names), so distinct values never tie.
    if is_dataclass(value) and not isinstance(value, type):
        return repr(astuple(value))
    if isinstance(value, tuple):
        return repr([_canon(v) for v in value])
    return repr(value)


def merge(old: RightsRecord | None, new: RightsRecord) -> RightsRecord:
    """Part by part, keep the fresher fact: an older answer never overwrites a newer one.
    Commutative and associative, so any arrival order gives the same record."""
    if old is None:
        return new
    if old.who != new.who:
        raise ValueError("refusing to merge the records of two different beneficiaries")
    changes = {name: _newer(getattr(old, name), getattr(new, name)) for name in PART_NAMES}
    return replace(old, **changes)


class Status(StrEnum):
    FRESH = "fresh"  # obtained recently enough to count as current
    STALE_OK = "stale_ok"  # older, but within the offline policy: may be billed, says so
    STALE_REFUSED = "stale_refused"  # too old to bill on
    EXPIRED = "expired"  # the freshest known AMO rights do not cover today
    UNKNOWN = "unknown"  # nothing cached for this beneficiary
    BLOCKED = "blocked"  # the presented means is opposed or deactivated


BILLABLE = frozenset((Status.FRESH, Status.STALE_OK))


@dataclass(frozen=True, slots=True)
class RightsAnswer:
    """The verdict for one beneficiary at one moment. `source` and `obtained_at` are those of
    the AMO rights the verdict rests on; a care sheet billed on it records both."""

    status: Status
    record: RightsRecord | None
    source: Source | None
    obtained_at: int | None
    reason: str = ""  # short, never personal data
    refreshed: bool = False  # True when the service answered during this look-up

    @property
    def billable(self) -> bool:
        return self.status in BILLABLE

    @property
    def rights(self) -> RightsRecord | None:
        return self.record


def day_of(now: int, tz: dt.tzinfo) -> dt.date:
    return dt.datetime.fromtimestamp(now, tz).date()
