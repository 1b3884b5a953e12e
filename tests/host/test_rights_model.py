"""Rights model: merge by freshness (any arrival order gives the freshest), the staleness
policy's verdicts, identities within a family, the record codec, no personal data in repr."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rights_fixtures import DAY, NOW, TODAY, fam, members, twins_family

from comptoir.rights import (
    BeneficiaryId,
    RightsRecord,
    Source,
    Sourced,
    StalenessPolicy,
    Status,
    codec,
    from_credential,
    merge,
)
from comptoir.rights.model import PART_NAMES, Names
from comptoir.rights.sources import snapshot
from comptoir.rights.store import MEANS_DEACTIVATED, MEANS_OPPOSED
from comptoir.tokens.model import Affiliation, Credential, Period

WHO = BeneficiaryId("185057599012304", 19850501, 1, 0)
COVER = (Period(TODAY - dt.timedelta(days=30), TODAY + dt.timedelta(days=30)),)


# -- merge by freshness --------------------------------------------------------------------------

facts = st.builds(
    Sourced,
    value=st.integers(0, 3),
    source=st.sampled_from(list(Source)),
    obtained_at=st.integers(NOW - 5, NOW + 5),  # narrow: many ties on time
)
part_names = st.sampled_from(["affiliation", "amc", "credential_id", "names"])


def _record(part: str, fact: Sourced) -> RightsRecord:
    value = {
        "affiliation": Affiliation(1, 751, fact.value),
        "amc": None,
        "credential_id": bytes([fact.value]),
        "names": Names("N", str(fact.value)),
    }[part]
    return RightsRecord(WHO, **{part: Sourced(value, fact.source, fact.obtained_at)})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(part_names, facts), min_size=1, max_size=8), st.randoms())
def test_any_order_of_answers_yields_the_freshest(answers, rnd):
    records = [_record(p, f) for p, f in answers]
    shuffled = records[:]
    rnd.shuffle(shuffled)
    merged_a = merged_b = None
    for r in records:
        merged_a = merge(merged_a, r)
    for r in shuffled:
        merged_b = merge(merged_b, r)
    assert merged_a == merged_b
    for part in PART_NAMES:
        candidates = [getattr(r, part) for r in records if getattr(r, part) is not None]
        got = getattr(merged_a, part)
        if not candidates:
            assert got is None
            continue
        best = max(c.order() for c in candidates)
        assert got.order() == best  # the freshest (then the stronger source) wins
        assert got in candidates


def test_older_answer_never_overwrites_newer():
    new = RightsRecord(WHO, amo=Sourced((), Source.SERVICE, NOW))
    old = RightsRecord(WHO, amo=Sourced(COVER, Source.SERVICE, NOW - DAY))
    assert merge(new, old).amo == new.amo
    assert merge(old, new).amo == new.amo
    # A same-second credential and service answer: the service wins, either order.
    cred = RightsRecord(WHO, amo=Sourced(COVER, Source.CREDENTIAL, NOW))
    assert merge(cred, new).amo is new.amo and merge(new, cred).amo is new.amo


def test_merging_two_people_is_refused():
    other = BeneficiaryId(WHO.nir, WHO.birth_date, 2, 0)
    with pytest.raises(ValueError):
        merge(RightsRecord(WHO), RightsRecord(other))


# -- identities ----------------------------------------------------------------------------------


def test_family_members_have_distinct_identities_even_twins_and_same_day_spouse():
    f = twins_family()
    ids = members(f)
    assert len(ids) == 4 and len(set(ids)) == 4
    assert len({i.canonical() for i in ids}) == 4
    assert {i.nir for i in ids} == {f.insured.nir}  # all under the insured's NIR


def test_canonical_identity_is_unambiguous():
    seen = {}
    for nir, bd, rank, q in itertools.product(
        ("185057599012304", "2940375120005"), (19850501, 20150601), (1, 2, 11), (0, 2, 6)
    ):
        who = BeneficiaryId(nir, bd, rank, q)
        assert seen.setdefault(who.canonical(), who) == who


def test_snapshot_refuses_duplicate_identities_in_one_family():
    f = twins_family()
    dup = (*f.beneficiaries, f.beneficiaries[-1])
    with pytest.raises(ValueError):
        snapshot(f.insured, dup, f.affiliation, f.amc, source=Source.SERVICE, obtained_at=NOW)


# -- policy --------------------------------------------------------------------------------------


def _rec(source=Source.SERVICE, age=0, periods=COVER):
    return RightsRecord(WHO, amo=Sourced(periods, source, NOW - age))


@pytest.mark.parametrize(
    ("record", "status", "reason"),
    [
        (None, Status.UNKNOWN, "not_in_cache"),
        (RightsRecord(WHO), Status.UNKNOWN, "not_in_cache"),
        (_rec(age=0), Status.FRESH, ""),
        (_rec(age=DAY), Status.FRESH, ""),
        (_rec(age=DAY + 1), Status.STALE_OK, "cached_rights"),
        (_rec(age=7 * DAY), Status.STALE_OK, "cached_rights"),
        (_rec(age=7 * DAY + 1), Status.STALE_REFUSED, "cached_rights_too_old"),
        (_rec(Source.CREDENTIAL, age=30 * DAY), Status.STALE_OK, "cached_rights"),
        (_rec(Source.CREDENTIAL, age=91 * DAY), Status.STALE_REFUSED, "cached_rights_too_old"),
        (_rec(age=-3600), Status.FRESH, ""),  # clock set back: not "older"
        (_rec(periods=()), Status.EXPIRED, "no_amo_rights"),
        (
            _rec(periods=(Period(TODAY - dt.timedelta(days=9), TODAY - dt.timedelta(days=1)),)),
            Status.EXPIRED,
            "amo_period_ended",
        ),
        (_rec(age=30 * DAY, periods=()), Status.EXPIRED, "no_amo_rights"),
    ],
)
def test_policy_verdicts(record, status, reason):
    answer = StalenessPolicy().verdict(WHO, record, NOW)
    assert (answer.status, answer.reason) == (status, reason)
    assert answer.billable == (status in (Status.FRESH, Status.STALE_OK))
    if status not in (Status.UNKNOWN,):
        assert answer.source is record.amo.source
        assert answer.obtained_at == record.amo.obtained_at


def test_policy_is_configurable_and_validated():
    strict = StalenessPolicy(fresh_for=3600, offline_max_age=2 * 3600, credential_max_age=3600)
    assert strict.verdict(WHO, _rec(age=2 * 3600 + 1), NOW).status is Status.STALE_REFUSED
    assert strict.verdict(WHO, _rec(Source.CREDENTIAL, 3601), NOW).status is Status.STALE_REFUSED
    with pytest.raises(ValueError):
        StalenessPolicy(fresh_for=10, offline_max_age=5)


@pytest.mark.parametrize(
    ("state", "reason"),
    [(MEANS_OPPOSED, "means_opposed"), (MEANS_DEACTIVATED, "means_deactivated")],
)
def test_blocked_means_overrides_fresh_rights(state, reason):
    answer = StalenessPolicy().verdict(WHO, _rec(), NOW, means_state=state)
    assert (answer.status, answer.reason, answer.billable) == (Status.BLOCKED, reason, False)


def test_policy_day_follows_the_configured_timezone():
    # 2026-09-21 22:30 UTC is already the 22nd in Paris: rights ending on the 21st are over.
    now = int(dt.datetime(2026, 9, 21, 22, 30, tzinfo=dt.UTC).timestamp())
    day = dt.date(2026, 9, 21)
    rec = RightsRecord(WHO, amo=Sourced((Period(day, day),), Source.SERVICE, now))
    assert StalenessPolicy().verdict(WHO, rec, now).status is Status.EXPIRED
    assert StalenessPolicy(timezone="UTC").verdict(WHO, rec, now).status is Status.FRESH


# -- codec and repr ------------------------------------------------------------------------------


def test_codec_round_trip_of_every_family_member():
    for seed in range(1, 25):
        f = fam(seed, beneficiaries=seed % 4, amc=seed % 2 == 0)
        for r in snapshot(
            f.insured,
            f.beneficiaries,
            f.affiliation,
            f.amc,
            source=Source.SERVICE,
            obtained_at=NOW,
            credential_id=b"12345678",
        ):
            assert codec.decode(codec.encode(r)) == r


def test_codec_rejects_garbage():
    for junk in (b"", b"\xa0", b"\x83\x01\x02\x03", codec.encode(RightsRecord(WHO))[:-1]):
        with pytest.raises(ValueError):
            codec.decode(junk)


def test_repr_holds_no_personal_data():
    f = twins_family()
    records = snapshot(
        f.insured, f.beneficiaries, f.affiliation, f.amc, source=Source.SERVICE, obtained_at=NOW
    )
    text = repr(records) + repr([StalenessPolicy().verdict(r.who, r, NOW) for r in records])
    assert f.insured.nir not in text and f.insured.nir[:13] not in text
    for name in {
        f.insured.family_name,
        f.insured.given_names,
        *(b.given_names for b in f.beneficiaries),
    }:
        assert name not in text


def test_credential_rights_are_obtained_when_signed():
    f = fam(5)
    cred = Credential(
        b"c" * 8,
        NOW - 10 * DAY,
        NOW - 10 * DAY,
        NOW + DAY,
        f.insured,
        f.beneficiaries,
        f.affiliation,
        f.amc,
        1,
        0,
        None,
    )  # type: ignore[arg-type]
    records = from_credential(cred)
    assert all(r.amo.source is Source.CREDENTIAL for r in records)
    assert all(r.amo.obtained_at == NOW - 10 * DAY for r in records)
    assert all(r.credential_id.value == b"c" * 8 for r in records)
