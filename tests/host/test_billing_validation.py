"""Every bad field of a dispensation is refused, and the error names it."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from billing_fixtures import (
    ACL,
    CIP,
    DAY,
    FINESS,
    PRESCRIBER,
    adult_family,
    dispensation,
    line,
)

from comptoir.billing import BillingError, PatientRef, TiersPayant, build_care_sheet
from comptoir.billing.identifiers import (
    ean13_complete,
    finess_problem,
    luhn_complete,
    product_code_problem,
    rpps_problem,
)


def refused(d: object) -> tuple[str, ...]:
    with pytest.raises(BillingError) as exc:
        build_care_sheet(d)  # type: ignore[arg-type]
    assert str(exc.value)  # a readable message
    return exc.value.fields


def _wrong_key(code: str) -> str:
    return code[:-1] + str((int(code[-1]) + 1) % 10)


def test_baseline_is_valid() -> None:
    sheet = build_care_sheet(dispensation())
    assert (sheet.total, sheet.amo, sheet.amc, sheet.patient) == (2000, 1300, 700, 0)
    assert sheet.franchise == 200 and sheet.counter == 0 and sheet.tiers_payant == 15


def test_identifier_checks_known_values() -> None:
    # Real public numbers quoted in domain.md §3 pass; CIP13 example from the notes.
    assert finess_problem("010002301") is None
    assert rpps_problem("10005173140") is None
    assert product_code_problem("3400934998331") is None
    assert ean13_complete("340093499833") == "3400934998331"
    assert luhn_complete("01000230") == "010002301"


@pytest.mark.parametrize("good", [CIP, ACL])
def test_bad_product_key_refused(good: str) -> None:
    assert refused(dispensation(lines=(line(code=_wrong_key(good)),))) == ("lines[0].code",)


@pytest.mark.parametrize("code", ["3400934998", "1234567890128", "34009349983A1"])
def test_malformed_product_code_refused(code: str) -> None:
    assert refused(dispensation(lines=(line(), line(code=code)))) == ("lines[1].code",)


def test_bad_finess_key_refused() -> None:
    assert refused(dispensation(finess=_wrong_key(FINESS))) == ("finess",)
    assert refused(dispensation(finess="12345678")) == ("finess",)


def test_bad_rpps_keys_refused_by_role() -> None:
    assert refused(dispensation(prescriber_rpps=_wrong_key(PRESCRIBER))) == ("prescriber_rpps",)
    assert refused(dispensation(pharmacist_rpps=_wrong_key(PRESCRIBER))) == ("pharmacist_rpps",)


@pytest.mark.parametrize("name", ["quantity", "unit_price", "base"])
def test_negative_amounts_refused(name: str) -> None:
    fields = refused(dispensation(lines=(line(**{name: -5}),)))
    assert fields == (f"lines[0].{name}",)


@pytest.mark.parametrize("name", ["amo", "amc", "patient"])
def test_negative_given_parts_refused(name: str) -> None:
    parts = {"amo": 1300, "amc": 700, "patient": 0} | {name: -1}
    assert f"lines[0].{name}" in refused(dispensation(lines=(line(**parts),)))


def test_float_amount_refused() -> None:
    assert refused(dispensation(lines=(line(unit_price=10.5),))) == ("lines[0].unit_price",)


def test_parts_that_do_not_add_up_refused() -> None:
    assert refused(dispensation(lines=(line(amo=1300, amc=700, patient=1),))) == (
        "lines[0].parts",
    )


def test_wrong_compulsory_part_refused() -> None:
    assert refused(dispensation(lines=(line(amo=1400, amc=600, patient=0),))) == ("lines[0].amo",)


def test_given_parts_that_are_right_accepted() -> None:
    sheet = build_care_sheet(dispensation(lines=(line(amo=1300, amc=0, patient=700),)))
    assert (sheet.amo, sheet.amc, sheet.patient) == (1300, 0, 700)


def test_partial_parts_refused() -> None:
    assert refused(dispensation(lines=(line(amo=1300),))) == ("lines[0].parts",)


def test_base_above_price_refused() -> None:
    assert refused(dispensation(lines=(line(base=1001),))) == ("lines[0].base",)


@pytest.mark.parametrize("rate", [0, 50, 70, 101])
def test_bad_rate_refused(rate: int) -> None:
    assert refused(dispensation(lines=(line(rate=rate),))) == ("lines[0].rate",)


def test_maternity_requires_full_rate() -> None:
    assert refused(dispensation(nature=30)) == ("lines[0].rate",)
    assert build_care_sheet(dispensation(nature=30, lines=(line(rate=100),))).franchise == 0


def test_unknown_nature_refused() -> None:
    assert refused(dispensation(nature=11)) == ("nature",)


def test_beneficiary_not_in_transaction_refused() -> None:
    fam, other = adult_family(11), adult_family(12)
    stranger = other.beneficiaries[0]
    assert refused(dispensation(fam=fam, patient=PatientRef(*stranger.identity))) == (
        "transaction.patient",
    )
    # Same NIR, wrong birth rank (a twin that is not on this credential): refused too.
    b = fam.beneficiaries[0]
    twin = PatientRef(b.insured_nir, b.birth_date.to_int(), b.birth_rank + 5)
    assert refused(dispensation(fam=fam, patient=twin)) == ("transaction.patient",)


def test_beneficiary_of_the_transaction_accepted() -> None:
    fam = adult_family(11)
    b = fam.beneficiaries[1]
    sheet = build_care_sheet(dispensation(fam=fam, patient=PatientRef(*b.identity)))
    assert (sheet.beneficiary_rank, sheet.birth_date) == (b.rank, b.birth_date.to_int())
    assert sheet.insured_nir == fam.insured.nir  # the ouvrant droit's NIR, as B2 wants


def test_no_rights_on_the_day_refused() -> None:
    late = {"dispensed_on": dt.date(2031, 1, 2), "prescribed_on": dt.date(2031, 1, 1)}
    assert refused(dispensation(fam=adult_family(11, amc=False), **late)) == (
        "transaction.patient",
    )
    # The complementary contract has lapsed too: its tiers payant is refused as well.
    assert set(refused(dispensation(**late))) == {"transaction.patient", "tiers_payant.amc"}


def test_prescription_dates_refused() -> None:
    assert refused(dispensation(prescribed_on=DAY + dt.timedelta(days=1))) == ("prescribed_on",)
    assert refused(dispensation(prescribed_on=DAY - dt.timedelta(days=400))) == ("prescribed_on",)


def test_complementary_tiers_payant_needs_a_contract() -> None:
    fam = adult_family(11, amc=False)
    assert refused(dispensation(fam=fam, tiers_payant=TiersPayant(True, True))) == (
        "tiers_payant.amc",
    )
    assert "lines[0].amc" in refused(
        dispensation(fam=fam, tiers_payant=TiersPayant(True, False),
                     lines=(line(amo=1300, amc=700, patient=0),)))


def test_bad_transaction_id_and_empty_lines_refused() -> None:
    assert refused(dispensation(tx="a b")) == ("transaction.transaction_id",)
    assert refused(dispensation(lines=())) == ("lines",)
    too_many = tuple(line() for _ in range(100))
    assert refused(dataclasses.replace(dispensation(), lines=too_many)) == ("lines",)


def test_every_broken_field_is_reported_at_once() -> None:
    d = dispensation(finess="000000001", lines=(line(code=_wrong_key(CIP)), line(rate=12)))
    assert set(refused(d)) == {"finess", "lines[0].code", "lines[1].rate"}


def test_sheet_total_limit() -> None:
    big = line(quantity=999, unit_price=9_999_999, base=9_999_999)
    assert "total" in refused(dispensation(lines=(big,)))
