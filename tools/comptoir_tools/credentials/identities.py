"""Deterministic fake insured people and families, for tests and the twin.

Every NIR has a correct key, and every NIR kind the verifier must accept appears: mainland,
Corsica (2A/2B), pseudo-months (20, 30-42, 50+), overseas (97x, 2-digit commune), born abroad
(99 + country) and temporary numbers (sex digit 7/8). No generated NIR can be a real person's:
the commune or country part is always in a range INSEE does not assign (communes 990-999,
overseas communes 90-99, country codes 990-999) [inference from the INSEE code lists].
Names come from a fixed list of obviously fictitious words.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from comptoir.tokens.model import (
    Affiliation,
    AmcContract,
    Beneficiary,
    BirthDate,
    Exemption,
    InsuredPerson,
    Period,
)
from comptoir.tokens.nir import with_key

FAMILY_NAMES = (
    "FICTIF",
    "SPECIMEN",
    "EXEMPLAIRE",
    "MAQUETTE",
    "PROTOTYPE",
    "SIMULACRE",
    "POSTICHE",
    "CHIMÈRE",
    "FANTOCHE",
    "ESSAI-DUPLEX",
    "TESTEUR-BLANC",
    "BIDONVILLE-TEST",
    "FAUXNOM",
    "ZÉRO-UN",
    "MODÈLE-TYPE",
    "ÉCHANTILLON",
)
GIVEN_NAMES = (
    "ALPHA",
    "BÊTA",
    "GAMMA",
    "DELTA",
    "EPSILON",
    "ZÊTA",
    "ÊTA",
    "THÊTA",
    "IOTA",
    "KAPPA",
    "LAMBDA",
    "MU",
    "NU",
    "XI",
    "OMICRON",
    "PI",
    "RHÔ",
    "SIGMA",
    "TAU",
    "UPSILON",
    "PHI",
    "KHI",
    "PSI",
    "OMÉGA",
    "ALPHA-MARIE",
    "JEAN-DELTA",
)
NIR_KINDS = ("mainland", "corsica", "pseudo_month", "overseas", "abroad", "temporary")
QUALITY_SPOUSE, QUALITY_CHILD = 2, 6
PSEUDO_MONTHS = (20, *range(30, 43), *range(50, 100))


@dataclass(frozen=True)
class Family:
    insured: InsuredPerson
    beneficiaries: tuple[Beneficiary, ...]
    affiliation: Affiliation
    amc: AmcContract | None
    nir_kind: str


def make_nir(rng: random.Random, kind: str, sex: int, birth: BirthDate, pseudo_month: int) -> str:
    """A valid 15-character NIR (with key) of the given kind, in unassigned code ranges."""
    if kind == "temporary":
        sex += 6  # 7 or 8: provisional number
    month = pseudo_month if kind == "pseudo_month" else birth.month
    order = f"{rng.randint(1, 999):03d}"
    if kind == "corsica":
        place = rng.choice(("2A", "2B")) + f"{rng.randint(990, 999)}"
    elif kind == "overseas":
        place = f"{rng.randint(971, 976)}{rng.randint(90, 99)}"
    elif kind == "abroad":
        place = f"99{rng.randint(990, 999)}"
    else:
        dept = rng.choice([d for d in range(1, 96) if d != 20])
        place = f"{dept:02d}{rng.randint(990, 999)}"
    return with_key(f"{sex}{birth.year % 100:02d}{month:02d}{place}{order}")


def _date(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rng.randint(0, max(0, (last - first).days)))


def family(
    seed: int,
    *,
    beneficiaries: int | None = None,
    nir_kind: str | None = None,
    today: dt.date | None = None,
    amc: bool | None = None,
) -> Family:
    """The family for `seed` (same seed, same `today` -> same family)."""
    rng = random.Random(seed)
    today = today or dt.date.today()
    kind = nir_kind or NIR_KINDS[seed % len(NIR_KINDS)]
    if kind not in NIR_KINDS:
        raise ValueError(f"unknown NIR kind {kind!r}")
    earliest = dt.date(1976, 1, 1) if kind == "corsica" else dt.date(1940, 1, 1)
    born = _date(rng, earliest, dt.date(today.year - 25, 12, 31))
    pseudo = rng.choice(PSEUDO_MONTHS)
    # Incomplete civil status: month and day unknown, as the pseudo-month says.
    birth = (
        BirthDate(born.year, 0, 0)
        if kind == "pseudo_month"
        else BirthDate(born.year, born.month, born.day)
    )
    sex = rng.choice((1, 2))
    family_name = rng.choice(FAMILY_NAMES)
    year_start = dt.date(today.year, 1, 1)
    rights = (Period(year_start - dt.timedelta(days=365), dt.date(today.year + 1, 12, 31)),)
    exemptions = (
        (Exemption(rng.choice((41, 42, 43, 44, 45, 46)), rights[0]),) if rng.random() < 0.3 else ()
    )
    insured = InsuredPerson(
        nir=make_nir(rng, kind, sex, birth, pseudo),
        family_name=family_name,
        given_names=rng.choice(GIVEN_NAMES),
        birth_date=birth,
        rights=rights,
        exemptions=exemptions,
    )
    count = rng.choice((0, 1, 2, 3)) if beneficiaries is None else beneficiaries
    members: list[Beneficiary] = []
    used: set[tuple[int, int]] = set()
    for rank in range(1, count + 1):
        if rank == 1 and rng.random() < 0.5:
            quality = QUALITY_SPOUSE
            bday = _date(rng, born - dt.timedelta(days=3650), born + dt.timedelta(days=3650))
        else:
            quality = QUALITY_CHILD
            bday = _date(rng, dt.date(born.year + 20, 1, 1), today - dt.timedelta(days=1))
        if members and rng.random() < 0.2:
            bday = dt.date.fromisoformat(str(members[-1].birth_date))  # twins
        bdate = BirthDate(bday.year, bday.month, bday.day)
        birth_rank = 1
        while (bdate.to_int(), birth_rank) in used:
            birth_rank += 1
        used.add((bdate.to_int(), birth_rank))
        members.append(
            Beneficiary(
                insured_nir=insured.nir,
                rank=rank,
                birth_date=bdate,
                birth_rank=birth_rank,
                quality=quality,
                family_name=family_name if rng.random() < 0.8 else rng.choice(FAMILY_NAMES),
                given_names=rng.choice(GIVEN_NAMES),
                rights=rights,
            )
        )
    affiliation = Affiliation(
        regime=rng.choice((1, 1, 1, 2, 91)),
        caisse=rng.choice((751, 131, 691, 331, 590)),
        centre=rng.randint(1, 9999),
    )
    has_amc = rng.random() < 0.5 if amc is None else amc
    contract = (
        AmcContract(
            amc_number=99_000_000 + rng.randint(0, 999_999),
            contract_type=rng.choice((1, 89)),
            period=Period(year_start, dt.date(today.year, 12, 31)),
            tiers_payant=15,
        )
        if has_amc
        else None
    )
    return Family(insured, tuple(members), affiliation, contract, kind)
