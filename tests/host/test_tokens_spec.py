"""Rules docs/tokens.md states that no other test checked (issue 19): one test per rule, named
after the section that states it."""

from __future__ import annotations

import dataclasses
import unicodedata

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokens_fixtures import NOW, World, resign, sign1_parts

from comptoir.tokens import claims, cose
from comptoir.tokens.model import BirthDate
from comptoir.tokens.reasons import Reason, TokenError
from comptoir.tokens.status import StatusLists
from comptoir.tokens.trust import (
    ROLE_ISSUE_CREDENTIALS,
    ROLE_SIGN_STATUS_LISTS,
    ROLE_SIGN_TRUST_LISTS,
    TrustStore,
)
from comptoir_tools.credentials import pki as pki_tools
from comptoir_tools.credentials.pki import new_device_key


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def refused(result, reason: Reason) -> None:
    assert not result.ok, f"accepted, expected {reason}"
    assert result.reason is reason, f"{result.reason} ({result.detail!r}), expected {reason}"


def credential_claims(world: World, **changes) -> dict:
    cred = world.issuer.credential(world.family(), new_device_key().public_key(), now=NOW - 60)
    return claims.encode_credential(dataclasses.replace(cred, **changes))


def parse_refused(payload: dict, reason: Reason = Reason.CLAIMS_MALFORMED) -> None:
    with pytest.raises(TokenError) as exc:
        claims.parse_credential(payload, NOW)
    assert exc.value.reason is reason, exc.value


# --- §4 names: `tstr .size (1..64)` counts UTF-8 bytes; printable -------------------------------


def test_name_size_counts_bytes_not_characters(world):
    """Fails before issue 19: 40 x "É" is 40 characters but 80 bytes."""
    fam = world.family()
    for name, ok in (("É" * 32, True), ("É" * 33, False), ("É" * 40, False), ("A" * 64, True),
                     ("A" * 65, False), ("€" * 21 + "A", True), ("€" * 22, False)):
        ins = dataclasses.replace(fam.insured, given_names=name)
        result = world.qr(world.custom_wallet(insured=ins).present_qr(now=NOW))
        assert result.ok is ok, (len(name.encode()), result)
        if not ok:
            refused(result, Reason.CLAIMS_MALFORMED)


@pytest.mark.parametrize(
    "char",
    ["\x00", "\x1b", "\x7f", "\x85", "\u200b", "\u200e", "\u202e", "\ufeff", "\u2028", "\u2029",
     "\u00a0", "\u3000", "\ue000", "\U000f0000", "\u0378"],
)
def test_non_printable_characters_in_names_are_refused(world, char):
    """§4: control (Cc), format (Cf), private use (Co), unassigned (Cn), line and paragraph
    separators (Zl, Zp) and every space separator (Zs) except U+0020."""
    payload = credential_claims(world)
    payload[claims.C_INSURED][claims.P_FAMILY_NAME] = "FICTIF" + char + "NOM"
    parse_refused(payload)


_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"}


def _documented_name_rule(value: str) -> bool:
    if not 1 <= len(value.encode("utf-8", "surrogatepass")) <= claims.MAX_NAME:
        return False
    return all(c == " " or unicodedata.category(c) not in _REFUSED_CATEGORIES for c in value)


@settings(max_examples=400, deadline=None)
@given(st.text(min_size=0, max_size=70))
def test_name_rule_is_the_documented_one(value):
    """Property: claims.text accepts exactly the strings §4's rule describes."""
    try:
        claims.text(value, "name")
        accepted = True
    except TokenError:
        accepted = False
    assert accepted is _documented_name_rule(value), ascii(value)


# --- §4 beneficiaries: `? -6: [1*16 beneficiary]` ------------------------------------------------


def test_empty_beneficiary_array_is_refused(world):
    """Fails before issue 19: an empty -6 array was accepted (a second encoding of "none")."""
    payload = credential_claims(world, beneficiaries=())
    assert claims.C_BENEFICIARIES not in payload
    claims.parse_credential(payload, NOW)  # omitted: fine
    payload[claims.C_BENEFICIARIES] = []
    parse_refused(payload)
    result = world.qr(world.custom_wallet(payload=payload).present_qr(now=NOW))
    refused(result, Reason.CLAIMS_MALFORMED)


def test_seventeen_beneficiaries_are_refused(world):
    fam = world.family(beneficiaries=1)
    payload = credential_claims(world)
    one = claims.encode_credential(
        world.issuer.credential(fam, new_device_key().public_key(), now=NOW - 60)
    )[claims.C_BENEFICIARIES][0]
    payload[claims.C_BENEFICIARIES] = [
        {**one, claims.P_RANK: r, claims.P_BIRTH_RANK: r % 9 + 1, claims.P_BIRTH_DATE: 20000101 + r}
        for r in range(1, 18)
    ]
    parse_refused(payload, Reason.BENEFICIARIES_INCONSISTENT)
    payload[claims.C_BENEFICIARIES] = payload[claims.C_BENEFICIARIES][:16]
    claims.parse_credential(payload, NOW)


# --- §4 birth dates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (18700101, True), (18691231, False),  # years before 1870 are refused
        (19610000, True), (19610300, True),  # unknown day; unknown month and day
        (19610005, False),  # unknown month but a day
        (19610230, False), (19610431, False), (19611301, False), (19610132, False),  # impossible
        (20000229, True), (19000229, False),  # leap years
        (20260921, True), (20260922, False),  # today is allowed, tomorrow is the future
        (20260900, True), (20261000, False),  # unknown day: compared by month
    ],
)
def test_birth_date_rules(value, ok):
    today = BirthDate.from_int(20260921)
    import datetime as dt

    got = claims.birth_date(value, dt.date(today.year, today.month, today.day))
    assert (got is not None) is ok, value


def test_insured_born_in_the_future_is_refused(world):
    """§4: the future check applies to the insured person too (claims_malformed, where a
    beneficiary's is beneficiaries_inconsistent)."""
    payload = credential_claims(world)
    payload[claims.C_INSURED][claims.P_BIRTH_DATE] = 20301231
    parse_refused(payload)


def test_insured_birth_date_before_1870_or_impossible_is_refused(world):
    for value in (18691231, 19610230, 19611301):
        payload = credential_claims(world)
        payload[claims.C_INSURED][claims.P_BIRTH_DATE] = value
        parse_refused(payload)


# --- §4 numeric bounds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "largest"),
    [
        ((claims.C_GENERATION,), 2**32),
        ((claims.C_STATUS_INDEX,), 2**32),
        ((claims.EXP,), 2**63 - 1),
        ((claims.C_AMC, claims.A_NUMBER), 9_999_999_999),
        ((claims.C_AMC, claims.A_CONTRACT_TYPE), 99),
        ((claims.C_AFFILIATION, 0), 99),
        ((claims.C_AFFILIATION, 1), 999),
        ((claims.C_AFFILIATION, 2), 9999),
        ((claims.C_RIGHTS, 0, 1), 200_000),  # day numbers
    ],
)
def test_numeric_bounds(world, path, largest):
    from comptoir_tools.credentials.identities import family

    fam = family(7, beneficiaries=1, amc=True, today=dt_today())
    cred = world.issuer.credential(fam, new_device_key().public_key(), now=NOW - 60)
    for value, ok in ((largest, True), (largest + 1, False)):
        payload = claims.encode_credential(cred)
        target = payload
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        if ok:
            claims.parse_credential(payload, NOW)
        else:
            parse_refused(payload)


def dt_today():
    import datetime as dt

    return dt.datetime.fromtimestamp(NOW, dt.UTC).date()


def test_at_most_eight_periods_and_exemptions(world):
    payload = credential_claims(world)
    payload[claims.C_RIGHTS] = [[20000, 20001]] * 8
    claims.parse_credential(payload, NOW)
    payload[claims.C_RIGHTS] = [[20000, 20001]] * 9
    parse_refused(payload)
    payload = credential_claims(world)
    payload[claims.C_INSURED][claims.P_EXEMPTIONS] = [[41, 20000, 20001]] * 9
    parse_refused(payload)
    payload[claims.C_INSURED][claims.P_EXEMPTIONS] = [[41, 20001, 20000]]  # first > last
    parse_refused(payload)


def test_tiers_payant_codes(world):
    from comptoir_tools.credentials.identities import family

    fam = family(7, beneficiaries=0, amc=True, today=dt_today())
    cred = world.issuer.credential(fam, new_device_key().public_key(), now=NOW - 60)
    for code in range(0, 30):
        payload = claims.encode_credential(cred)
        payload[claims.C_AMC][claims.A_TIERS_PAYANT] = code
        if code in (0, 5, 15, 25):
            claims.parse_credential(payload, NOW)
        else:
            parse_refused(payload)


# --- §3 and §8: header checks, kid sizes, step order -------------------------------------------


def test_unprotected_header_is_checked_before_alg(world):
    """§8 step 2: a COSE_Sign1 with both a wrong alg and a non-empty unprotected header is
    refused for the unprotected header."""
    wallet = world.wallet()
    payload = sign1_parts(wallet.presentation(now=NOW))[2]
    token = resign(wallet.device_key, {cose.HDR_ALG: -35}, payload, unprotected={4: b"x"})
    refused(world.nfc(token), Reason.UNPROTECTED_HEADER_NOT_EMPTY)


@pytest.mark.parametrize(("kid", "ok"), [(b"k", True), (b"K" * 16, True), (b"K" * 17, False)])
def test_certificate_kid_is_1_to_16_bytes(world, kid, ok):
    issuer = world.pki.new_issuer(f"KID {len(kid)}", kid=kid)
    data = world.pki.trust_list(now=NOW, entries=[world.issuer.certificate, issuer.certificate])
    if ok:
        world.trust.load(data, NOW)
        world.issuer = issuer
        assert world.qr(world.wallet(world.family(seed=31)).present_qr(now=NOW)).ok
    else:
        with pytest.raises(TokenError) as exc:
            world.trust.load(data, NOW)
        assert exc.value.reason is Reason.TRUST_LIST_INVALID


# --- §7 trust list ----------------------------------------------------------------------------


def test_trust_list_kid_must_name_its_signer_certificate(world):
    """Fails before issue 19: a header kid that matched nothing was accepted."""
    pki = world.pki
    entries = [i.certificate for i in pki.issuers]
    for kid in (b"NOTHING!", world.issuer.kid, None):
        header = {cose.HDR_ALG: cose.ALG_ES256, cose.HDR_SIGNER_CERT: pki.list_signer_certificate}
        if kid is not None:
            header[cose.HDR_KID] = kid
        payload = sign1_parts(pki.trust_list(now=NOW, entries=entries, sequence=50))[2]
        data = cose.sign(pki.list_signer_key, header, payload)
        with pytest.raises(TokenError) as exc:
            world.trust.load(data, NOW)
        assert exc.value.reason is Reason.TRUST_LIST_INVALID, kid
        assert "kid" in exc.value.detail
    world.trust.load(pki.trust_list(now=NOW, entries=entries, sequence=50), NOW)


@pytest.mark.parametrize(("ahead", "ok"), [(60, True), (61, False)])
def test_trust_list_issued_in_the_future_within_the_skew(world, ahead, ok):
    """§7: a list whose iat is more than the skew (60 s) ahead of the host clock is not loaded."""
    data = world.pki.trust_list(now=NOW + ahead)
    if ok:
        assert world.trust.load(data, NOW).issued_at == NOW + ahead
    else:
        with pytest.raises(TokenError) as exc:
            world.trust.load(data, NOW)
        assert exc.value.reason is Reason.TRUST_LIST_INVALID


def test_trust_list_signer_certificate_out_of_validity(world):
    """§7: the list signer's certificate must be valid now (within the skew)."""
    pki = world.pki
    cert = pki_tools.certificate(
        pki.anchor_key, subject="old signer", public_key=pki.list_signer_key.public_key(),
        roles=ROLE_SIGN_TRUST_LISTS, not_before=NOW - 1000, not_after=NOW - 61,
    )
    data = pki_tools.trust_list(pki.list_signer_key, cert, [world.issuer.certificate],
                                sequence=60, issued_at=NOW - 100, expires_at=NOW + 100, grace=0)
    with pytest.raises(TokenError) as exc:
        world.trust.load(data, NOW)
    assert exc.value.reason is Reason.TRUST_LIST_INVALID
    assert world.trust.load(data, NOW - 100).sequence == 60  # valid then


def test_roles_are_a_bit_set(world):
    """§7: roles is a bit set; one certificate may hold several (1|2|4)."""
    pki = world.pki
    everything = ROLE_ISSUE_CREDENTIALS | ROLE_SIGN_STATUS_LISTS | ROLE_SIGN_TRUST_LISTS
    issuer = pki.new_issuer("ALL ROLES", roles=everything)
    world.trust.load(pki.trust_list(now=NOW, entries=[issuer.certificate]), NOW)
    world.issuer = issuer
    assert world.qr(world.wallet().present_qr(now=NOW)).ok
    other = pki.new_issuer("STATUS ONLY", roles=ROLE_SIGN_STATUS_LISTS | ROLE_SIGN_TRUST_LISTS)
    world.trust.load(pki.trust_list(now=NOW, entries=[issuer.certificate, other.certificate]),
                     NOW)
    world.issuer = other
    refused(world.qr(world.custom_wallet(key=other.key, kid=other.kid).present_qr(now=NOW)),
            Reason.ISSUER_ROLE_NOT_ALLOWED)


def test_at_most_four_certificates_per_kid(world):
    pki = world.pki
    shared = [pki.new_issuer(f"SHARED {i}", kid=b"SAMEKID!") for i in range(5)]
    world.trust.load(pki.trust_list(now=NOW, entries=[s.certificate for s in shared[:4]]), NOW)
    with pytest.raises(TokenError) as exc:
        world.trust.load(pki.trust_list(now=NOW, entries=[s.certificate for s in shared]), NOW)
    assert exc.value.reason is Reason.TRUST_LIST_INVALID


def test_an_entry_not_under_the_anchor_is_skipped_not_fatal(world):
    """§7: an entry that does not verify under the anchor does not make the list invalid; its
    kid is refused as issuer_not_under_anchor; an entry that is not a certificate at all
    makes the list invalid."""
    rogue = pki_tools.TestPki(seed=666, now=NOW).issuers[0]
    tl = world.trust.load(
        world.pki.trust_list(now=NOW, entries=[world.issuer.certificate, rogue.certificate]), NOW
    )
    assert rogue.kid in tl.rejected_kids and world.issuer.kid in tl.by_kid
    with pytest.raises(TokenError) as exc:
        world.trust.load(
            world.pki.trust_list(now=NOW, entries=[world.issuer.certificate, b"\x01"]), NOW
        )
    assert exc.value.reason is Reason.TRUST_LIST_INVALID


# --- §7 status lists --------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "reason"), [(0, None), (1, Reason.CREDENTIAL_REVOKED),
                                               (2, Reason.CREDENTIAL_SUSPENDED),
                                               (3, Reason.CREDENTIAL_REVOKED)])
def test_status_values(world, value, reason):
    """§7: 0 valid, 1 invalid, 2 suspended, 3 (any other value) refused as credential_revoked."""
    wallet = world.wallet()
    world.issuer.set_status(len(world.issuer.statuses) - 1, value)
    world.publish_status(NOW + 1)
    result = world.qr(wallet.present_qr(now=NOW + 1), now=NOW + 1)
    if reason is None:
        assert result.ok
    else:
        refused(result, reason)


def test_status_list_with_the_same_iat_does_not_replace_the_held_one(world):
    """§7: strictly newer. An older list signed in the same second cannot be replayed over the
    newer one."""
    store = StatusLists(world.trust)
    world.wallet()  # one index on the list
    first = world.issuer.status_list(now=NOW)
    world.issuer.set_status(0, 1)
    second = world.issuer.status_list(now=NOW)
    store.load(second, NOW)
    with pytest.raises(TokenError):
        store.load(first, NOW)
    assert store.status(world.issuer.status_list_id, 0, NOW) == 1


# --- §8 CBOR limits: how depth, items and containers are counted -------------------------------


def test_cbor_limit_counting():
    from comptoir.tokens.cbor_safe import CborLimits, scan

    lim = CborLimits(max_bytes=100, max_depth=2, max_items=5, max_container=2)
    scan(cbor2.dumps([1, 2]), lim)  # depth 2: the array (1) and its items (2)
    scan(cbor2.dumps([[], 1]), lim)  # an empty container opens no level
    with pytest.raises(TokenError) as exc:
        scan(cbor2.dumps([[1]]), lim)
    assert exc.value.reason is Reason.CBOR_TOO_DEEP
    scan(cbor2.dumps({1: 2, 3: 4}), lim)  # 1 map + 2 keys + 2 values = 5 items
    with pytest.raises(TokenError) as exc:
        scan(cbor2.dumps({1: 2, 3: 4, 5: 6}), CborLimits(100, 2, 6, 3))  # 1 + 3 + 3 = 7 items
    assert exc.value.reason is Reason.CBOR_TOO_MANY_ITEMS
    with pytest.raises(TokenError) as exc:
        scan(cbor2.dumps([1, 2, 3]), lim)  # 3 elements in one container
    assert exc.value.reason is Reason.CBOR_TOO_MANY_ITEMS
    tag = CborLimits(max_bytes=100, max_depth=1, max_items=1, max_container=0, top_tag=18)
    scan(b"\xd2\x00", tag)  # the top tag is neither a level nor an item


def test_trust_store_skew_is_the_verifier_default():
    from comptoir.tokens.verify import Policy

    assert Policy().clock_skew == 60
    import inspect

    assert inspect.signature(TrustStore).parameters["clock_skew"].default == 60
    assert inspect.signature(StatusLists).parameters["clock_skew"].default == 60


def test_a_certificate_key_may_be_compressed(world):
    """§3: both COSE_Key forms are accepted wherever a key appears (the test PKI writes
    certificates uncompressed, credentials compressed)."""
    import cbor2 as _cbor2

    pki = world.pki
    key = pki_tools.derive_key(1, "issuer:COMPRESSED")
    kid = cose.key_id(key.public_key())
    list_id = "urn:compressed"
    payload = {claims.TYP: claims.TYP_CERTIFICATE, claims.NBF: pki.not_before,
               claims.EXP: pki.not_after, -2: "COMPRESSED", -3: kid,
               -4: cose.encode_key(key.public_key(), compressed=True),
               -5: ROLE_ISSUE_CREDENTIALS | ROLE_SIGN_STATUS_LISTS, -6: list_id}
    header = {cose.HDR_ALG: cose.ALG_ES256, cose.HDR_KID: cose.key_id(pki.anchor)}
    cert = cose.sign(pki.anchor_key, header, _cbor2.dumps(payload))
    world.trust.load(pki.trust_list(now=NOW, entries=[world.issuer.certificate, cert]), NOW)
    assert world.trust.certificates(kid)[0].key.public_numbers() == key.public_key(
    ).public_numbers()
    wallet = world.custom_wallet(key=key, kid=kid, status_index=0)
    world.status.load(pki_tools.status_list(key, kid, list_id=list_id, entries=b"\x00",
                                            issued_at=NOW, expires_at=NOW + 600, ttl=60), NOW)
    assert world.qr(wallet.present_qr(now=NOW)).ok
