"""NIR rules, as they really are, and masking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comptoir.tokens.nir import mask_nir, nir_key, parse_nir, with_key
from comptoir.tokens.reasons import Reason, TokenError
from comptoir_tools.credentials.identities import NIR_KINDS, family

# Fictitious numbers (commune/country codes 990-999 are unassigned); keys worked out by hand.
KEYS = [
    ("1850575990123", 4, "mainland"),
    ("290072A990010", 8, "Corsica 2A (computed as 19)"),
    ("290072B990010", 35, "Corsica 2B (computed as 18)"),
    ("1850797190045", 46, "Guadeloupe 971, 2-digit commune"),
    ("1624099990017", 82, "pseudo-month 40, born abroad"),
    ("2951099995111", 19, "born abroad"),
    ("7850575990123", 92, "provisional number"),
    ("2532050990001", None, "pseudo-month 20"),
    ("2535050990001", None, "pseudo-month 50"),
]


@pytest.mark.parametrize(("first13", "key", "case"), KEYS)
def test_valid_kinds_are_accepted(first13, key, case):
    if key is not None:
        assert nir_key(first13) == key, case
    info = parse_nir(with_key(first13))
    assert info.key == nir_key(first13)


def test_corsica_substitution():
    assert nir_key("290072A990010") == 97 - int("2900719990010") % 97
    assert nir_key("290072B990010") == 97 - int("2900718990010") % 97


def test_place_parsing():
    assert parse_nir(with_key("1850797190045")).department == "971"
    assert parse_nir(with_key("1850797190045")).place == "90"
    assert parse_nir(with_key("2951099995111")).born_abroad
    assert parse_nir(with_key("1624099990017")).pseudo_month


@pytest.mark.parametrize(
    "first13",
    [
        "0850575990123",
        "9850575990123",
        "1851575990123",
        "1852575990123",
        "1854375990123",
        "1850500990123",
        "185052C990123",
        "18505759901X3",
    ],
)
def test_malformed(first13):
    with pytest.raises(TokenError) as exc:
        parse_nir(first13 + "01")
    assert exc.value.reason is Reason.NIR_MALFORMED


@pytest.mark.parametrize("value", ["", "1850575990123", 185057599012304, None, "1" * 16])
def test_wrong_shape(value):
    with pytest.raises(TokenError) as exc:
        parse_nir(value)
    assert exc.value.reason is Reason.NIR_MALFORMED


@given(st.integers(0, 10**6), st.sampled_from(NIR_KINDS))
def test_generated_nirs_are_valid_and_any_other_key_is_refused(seed, kind):
    nir = family(seed, nir_kind=kind).insured.nir
    parse_nir(nir)
    wrong = nir[:13] + f"{int(nir[13:]) % 97 + 1:02d}"
    with pytest.raises(TokenError) as exc:
        parse_nir(wrong)
    assert exc.value.reason is Reason.NIR_BAD_KEY


@given(st.integers(0, 10**6), st.integers(0, 12), st.integers(0, 9))
def test_a_single_digit_error_is_always_caught(seed, pos, delta):
    """The mod-97 key catches every single substituted digit."""
    nir = family(seed, nir_kind="mainland").insured.nir
    if delta == 0 or not nir[pos].isdigit():
        return
    changed = nir[:pos] + str((int(nir[pos]) + delta) % 10) + nir[pos + 1 :]
    with pytest.raises(TokenError):
        parse_nir(changed)


def test_mask_shows_first_and_last_two_only():
    nir = with_key("1850575990123")
    masked = mask_nir(nir)
    assert masked == "1" + "*" * 12 + nir[-2:]
    assert len(masked) == 15 and "857599" not in masked
    assert mask_nir(None) == "***" and mask_nir("12") == "***"
