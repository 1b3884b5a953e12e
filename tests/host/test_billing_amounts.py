"""Property tests of the amount arithmetic: in integer cents, the parts always add up."""

from __future__ import annotations

import datetime as dt

from billing_fixtures import ACL, CIP, DAY, adult_family, dispensation
from hypothesis import given, settings
from hypothesis import strategies as st

from comptoir.billing import Journal, LineInput, PatientRef, TiersPayant, build_care_sheet
from comptoir.billing.amounts import (
    FRANCHISE_PER_BOX,
    FRANCHISE_YEAR_CAP,
    RATES,
    allocate_franchise,
    amo_part,
    counter_amount,
    split_line,
)

FAM_AMC, FAM_NONE = adult_family(11, amc=True), adult_family(11, amc=False)


@st.composite
def lines(draw: st.DrawFn) -> LineInput:
    price = draw(st.integers(1, 9_999_999 // 999))
    return LineInput(
        draw(st.sampled_from((CIP, ACL))),
        draw(st.integers(1, 999)),
        price,
        draw(st.integers(1, price)),
        draw(st.sampled_from(RATES)),
    )


@given(st.integers(1, 999), st.integers(1, 9_999_999), st.data(), st.sampled_from(RATES),
       st.booleans())
def test_line_parts_add_up(q: int, price: int, data: st.DataObject, rate: int, covers: bool
                           ) -> None:
    base = data.draw(st.integers(1, price))
    s = split_line(q, price, base, rate, covers)
    assert s.amo + s.amc + s.patient == s.total == q * price
    assert min(s.amo, s.amc, s.patient) >= 0
    assert s.amo <= s.base_total == q * base
    # Half up to the cent: never more than half a cent from the exact share.
    assert abs(100 * s.amo - s.base_total * rate) <= 50
    assert s.amc == (s.base_total - s.amo if covers else 0)
    assert s.patient >= s.total - s.base_total  # above the base is always the patient's


def test_rounding_is_half_up_per_line() -> None:
    assert amo_part(101, 65) == 66  # 65.65 -> 66
    assert amo_part(10, 15) == 2  # 1.5 -> 2, half up
    assert amo_part(303, 65) == 197  # 3 boxes of 1.01 at 65 %: 1.97, not 3 x 0.66


@given(st.lists(st.integers(0, 999), max_size=20), st.integers(0, 2 * FRANCHISE_YEAR_CAP))
def test_franchise_capped(boxes: list[int], used: int) -> None:
    f = allocate_franchise(boxes, used)
    assert all(0 <= x <= FRANCHISE_PER_BOX * n for x, n in zip(f, boxes, strict=True))
    assert sum(f) == min(FRANCHISE_PER_BOX * sum(boxes), max(0, FRANCHISE_YEAR_CAP - used))


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6), st.booleans(),
       st.booleans())
def test_counter_amount(amo: int, amc: int, patient: int, tp_amo: bool, tp_amc: bool) -> None:
    c = counter_amount(amo, amc, patient, tp_amo, tp_amc)
    assert patient <= c <= amo + amc + patient
    assert c == patient + amo * (not tp_amo) + amc * (not tp_amc)


@settings(max_examples=150, deadline=None)
@given(st.lists(lines(), min_size=1, max_size=8), st.booleans(), st.booleans(), st.booleans(),
       st.integers(0, FRANCHISE_YEAR_CAP + 500))
def test_sheet_parts_add_up(ls: list[LineInput], with_amc: bool, tp_amo: bool, tp_amc: bool,
                            used: int) -> None:
    fam = FAM_AMC if with_amc else FAM_NONE
    tp = TiersPayant(tp_amo, tp_amc and with_amc)
    d = dispensation(fam=fam, lines=tuple(ls), tiers_payant=tp)
    total = sum(x.quantity * x.unit_price for x in ls)
    if total > 99_999_999:
        return
    s = build_care_sheet(d, franchise_used=used)
    assert s.amo + s.amc + s.patient == s.total == total
    for x in s.lines:
        assert x.amo + x.amc + x.patient == x.total
    assert (s.amo, s.amc, s.patient, s.franchise) == tuple(
        sum(getattr(x, k) for x in s.lines) for k in ("amo", "amc", "patient", "franchise"))
    if not with_amc:
        assert s.amc == 0
    # The franchise changes no part and is never collected at the counter.
    free = build_care_sheet(d, franchise_used=FRANCHISE_YEAR_CAP)
    assert free.franchise == 0
    assert (free.amo, free.amc, free.patient, free.counter) == (s.amo, s.amc, s.patient,
                                                                s.counter)
    drug_boxes = sum(x.quantity for x in ls if x.code.startswith("34009"))
    assert s.franchise == min(100 * drug_boxes, max(0, FRANCHISE_YEAR_CAP - used))


def test_franchise_yearly_cap_across_sheets(tmp_path: object) -> None:
    """60 boxes for one adult in one year: 50 EUR of franchise in all, then none; a new year
    starts again."""
    fam = FAM_NONE
    ins = fam.insured
    me = PatientRef(ins.nir, ins.birth_date.to_int(), 1)
    with Journal(f"{tmp_path}/j.db") as j:
        charged = [
            j.record(dispensation(fam=fam, patient=me, tx=f"Y{i}",
                                  lines=(LineInput(CIP, 3, 500, 500, 65),))).franchise
            for i in range(20)
        ]
        assert sum(charged) == FRANCHISE_YEAR_CAP
        assert charged[:16] == [300] * 16 and charged[16:] == [200, 0, 0, 0]
        next_year = dispensation(fam=fam, patient=me, tx="Y-next",
                                 dispensed_on=dt.date(2027, 1, 4),
                                 prescribed_on=dt.date(2027, 1, 2))
        assert j.record(next_year).franchise == 200


def test_exemptions_from_the_franchise() -> None:
    fam = adult_family(11, beneficiaries=3)
    assert build_care_sheet(dispensation(fam=fam)).franchise == 200  # adult, illness
    child = next(b for b in fam.beneficiaries if (DAY.year - b.birth_date.year) < 17)
    assert build_care_sheet(dispensation(fam=fam, patient=PatientRef(*child.identity))
                            ).franchise == 0
    acl_only = dispensation(fam=fam, lines=(LineInput(ACL, 4, 900, 900, 65),))
    assert build_care_sheet(acl_only).franchise == 0  # not a drug box


def test_css_contract_exempts_from_the_franchise() -> None:
    import dataclasses

    fam = adult_family(11, amc=True)
    assert fam.amc is not None
    css = dataclasses.replace(fam, amc=dataclasses.replace(fam.amc, contract_type=89))
    sheet = build_care_sheet(dispensation(fam=css))
    assert sheet.franchise == 0 and sheet.amc_contract_type == 89
