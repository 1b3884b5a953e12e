"""The amount arithmetic of a care sheet, in integer cents. Pure functions, property-tested.

Rules (docs/billing.md):
* line total = quantity x unit price; line base = quantity x base per box.
* compulsory part (AMO) = line base x rate / 100, rounded half up to the cent, once per line
  (not per box: a box of 1.01 EUR at 65 % x 3 gives 1.97, not 3 x 0.66).
* ticket modérateur = line base - AMO; the complementary part (AMC) covers it when the patient
  has a contract valid that day; what is above the base (price over the TFR) is the patient's.
* patient part = total - AMO - AMC, so the three parts add up to the total by construction.
* franchise: 1 EUR per box of a drug (CIP13), at most 50 EUR per person per calendar year,
  spread over the lines in order; never collected at the counter, never paid by the AMC (the
  fund deducts it from later AMO payments), so it changes no part.
* at the counter the patient pays their part, plus each part not in tiers payant.
"""

from __future__ import annotations

from dataclasses import dataclass

RATES = (100, 65, 30, 15)
FRANCHISE_PER_BOX = 100
FRANCHISE_YEAR_CAP = 5000


@dataclass(frozen=True, slots=True)
class Split:
    total: int
    base_total: int
    amo: int
    amc: int
    patient: int


def amo_part(base_total: int, rate: int) -> int:
    """Half up to the cent; exact integer arithmetic (no float ever touches money)."""
    return (base_total * rate + 50) // 100


def split_line(quantity: int, unit_price: int, base: int, rate: int, amc_covers: bool) -> Split:
    total = quantity * unit_price
    base_total = quantity * base
    amo = amo_part(base_total, rate)
    amc = base_total - amo if amc_covers else 0
    return Split(total, base_total, amo, amc, total - amo - amc)


def allocate_franchise(boxes: list[int], used_this_year: int) -> list[int]:
    """Franchise per line for `boxes` (0 for lines it does not apply to), given what this
    person has already been charged this year."""
    room = max(0, FRANCHISE_YEAR_CAP - used_this_year)
    out = []
    for n in boxes:
        f = min(n * FRANCHISE_PER_BOX, room)
        room -= f
        out.append(f)
    return out


def counter_amount(amo: int, amc: int, patient: int, tp_amo: bool, tp_amc: bool) -> int:
    """What the patient pays at the counter: never the franchise."""
    return patient + (0 if tp_amo else amo) + (0 if tp_amc else amc)
