"""The rights cache as the daemon uses it: verified credentials in, verdicts out; the rights
service down for a whole run; families sharing an insured NIR; freshness across sources;
sync, opposition and status lists; the `comptoir cache` command line."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rights_fixtures import (
    DAY,
    HOUR,
    NOW,
    TODAY,
    client,
    fam,
    members,
    open_cache,
    running_service,
    twins_family,
)
from tokens_fixtures import World

from comptoir.rights import Source, Status, beneficiary_id, insured_id
from comptoir.rights.cli import main as cache_main
from comptoir.rights.wire import decode_answer
from comptoir.tokens.model import BirthDate
from comptoir_tools.simulators.rights_service import RightsService


def present(world: World, f, *, issued: int = NOW - HOUR):
    """The patient shows the phone; the verifier accepts it; the daemon records it."""
    wallet = world.wallet(f, issued=issued)
    result = world.qr(wallet.present_qr(now=NOW))
    assert result.ok, result
    return result


def dead_url() -> str:
    """The URL of a rights service that is down (nothing listens on its port)."""
    svc = RightsService().start()
    svc.stop()
    return svc.url


# -- offline ---------------------------------------------------------------------------------


def test_offline_for_the_whole_run(tmp_path, caplog):
    world = World(tmp_path / "tokens")
    presented = [fam(s) for s in (1, 2, 3)]
    synced, too_old, closed = [fam(s) for s in (4, 5)], fam(6), fam(7)
    never_seen = fam(8)

    # Before the outage: phones shown at NOW; earlier answers of the service.
    cache = open_cache(tmp_path)
    verified = {f.insured.nir: present(world, f) for f in presented}
    for f in presented:
        cache.record_verified(verified[f.insured.nir])
    svc = RightsService(now=lambda: NOW - 2 * DAY)
    for f in [*synced, too_old, closed]:
        svc.add_family(f)
    svc.add_family(too_old, as_of=NOW - 10 * DAY)
    svc.close_rights(closed.insured.nir)
    with svc:
        for f in [*synced, too_old, closed]:
            cache.record_service(f.insured.nir, client(svc.url).family(f.insured.nir))
    cache.close()

    # The outage: the service is down from start to end; the counter opens two days later.
    later = NOW + 2 * DAY
    caplog.set_level(logging.DEBUG, logger="comptoir")
    rc = client(dead_url(), threshold=3)
    cache = open_cache(tmp_path, now=later, client=rc)
    started = time.perf_counter()
    for f in presented:
        for who in members(f):
            a = cache.lookup(who, credential_id=verified[f.insured.nir].credential_id)
            assert (a.status, a.source, a.reason) == (
                Status.STALE_OK,
                Source.CREDENTIAL,
                "cached_rights",
            )
            assert a.billable and not a.refreshed and a.obtained_at == NOW - HOUR
            assert a.record.who == who
    for f in synced:
        for who in members(f):
            a = cache.lookup(who)
            assert (a.status, a.source, a.obtained_at) == (
                Status.STALE_OK,
                Source.SERVICE,
                NOW - 2 * DAY,
            )
            assert a.record.who == who
    for who in members(too_old):
        a = cache.lookup(who)
        assert (a.status, a.reason, a.billable) == (
            Status.STALE_REFUSED,
            "cached_rights_too_old",
            False,
        )
    for who in members(closed):
        assert cache.lookup(who).status is Status.EXPIRED
    for who in members(never_seen):
        a = cache.lookup(who)
        assert (a.status, a.reason, a.record, a.billable) == (
            Status.UNKNOWN,
            "not_in_cache",
            None,
            False,
        )
    # The breaker opened after the first patient's attempts: nobody else waited on the line.
    assert rc.attempts_made == 3
    assert time.perf_counter() - started < 3
    for f in [*presented, *synced, too_old, closed, never_seen]:
        assert f.insured.nir not in caplog.text and f.insured.family_name not in caplog.text
    cache.close()


def test_service_up_refreshes_stale_rights_and_says_so(tmp_path):
    f = fam(11)
    with running_service([f]) as svc:
        cache = open_cache(tmp_path, client=client(svc.url))
        assert cache.record_service(f.insured.nir, None) == 0  # unknown and not cached: no-op
        who = insured_id(f.insured)
        assert cache.rights_for(who).status is Status.UNKNOWN
        a = cache.lookup(who)
        assert (a.status, a.source, a.refreshed) == (Status.FRESH, Source.SERVICE, True)
        requests = svc.requests
        assert cache.lookup(who).refreshed is False  # fresh: the service is not asked again
        assert svc.requests == requests
        unknown = insured_id(fam(12).insured)
        a = cache.lookup(unknown)
        assert (a.status, a.reason, a.refreshed) == (Status.UNKNOWN, "unknown_to_service", True)
        cache.close()


# -- identities --------------------------------------------------------------------------------


def test_family_sharing_one_nir_each_member_gets_only_their_own_rights(tmp_path):
    world = World(tmp_path / "tokens")
    f = twins_family()
    cache = open_cache(tmp_path)
    cache.record_verified(present(world, f))
    ids = members(f)
    names = [m.given_names for m in (f.insured, *f.beneficiaries)]
    for who, name in zip(ids, names, strict=True):
        a = cache.rights_for(who)
        assert a.status is Status.FRESH and a.record.who == who
        assert a.record.names.value.given_names == name
    # The insurer closes only twin B's rights: nobody else is touched.
    twin_b = f.beneficiaries[2]
    changed = dataclasses.replace(
        f, beneficiaries=(*f.beneficiaries[:2], dataclasses.replace(twin_b, rights=()))
    )
    with running_service([changed]) as svc:
        cache.record_service(f.insured.nir, client(svc.url).family(f.insured.nir))
    statuses = [cache.rights_for(w).status for w in ids]
    assert statuses == [Status.FRESH, Status.FRESH, Status.FRESH, Status.EXPIRED]
    # Erasing twin A leaves the other three.
    assert cache.purge(ids[2]) == 1
    assert [cache.rights_for(w).status for w in ids] == [
        Status.FRESH,
        Status.FRESH,
        Status.UNKNOWN,
        Status.EXPIRED,
    ]
    cache.close()


def test_same_child_under_two_parents_nirs_are_two_records(tmp_path):
    mother, father = fam(21, beneficiaries=1), fam(22, beneficiaries=1)
    child = dataclasses.replace(
        father.beneficiaries[0], birth_date=BirthDate(2016, 3, 3), birth_rank=1, quality=6
    )
    mother = dataclasses.replace(
        mother,
        beneficiaries=(
            dataclasses.replace(
                child, insured_nir=mother.insured.nir, rights=mother.insured.rights
            ),
        ),
    )
    father = dataclasses.replace(father, beneficiaries=(dataclasses.replace(child, rights=()),))
    cache = open_cache(tmp_path)
    with running_service([mother, father]) as svc:
        c = client(svc.url)
        for f in (mother, father):
            cache.record_service(f.insured.nir, c.family(f.insured.nir))
    via_mother = beneficiary_id(mother.beneficiaries[0])
    via_father = beneficiary_id(father.beneficiaries[0])
    assert via_mother != via_father
    assert cache.rights_for(via_mother).status is Status.FRESH
    assert cache.rights_for(via_father).status is Status.EXPIRED
    assert cache.rights_for(via_mother).record.who.nir == mother.insured.nir
    cache.close()


# -- freshness across sources ------------------------------------------------------------------


def test_an_older_credential_never_overrides_a_newer_service_answer(tmp_path):
    world = World(tmp_path / "tokens")
    f = fam(31)
    who = insured_id(f.insured)
    cache = open_cache(tmp_path)
    svc = RightsService(now=lambda: NOW)
    svc.add_family(f)
    svc.close_rights(f.insured.nir)
    with svc:
        cache.record_service(f.insured.nir, client(svc.url).family(f.insured.nir))
    assert cache.rights_for(who).status is Status.EXPIRED
    cache.record_verified(present(world, f, issued=NOW - HOUR))  # signed before the closure
    a = cache.rights_for(who)
    assert (a.status, a.source) == (Status.EXPIRED, Source.SERVICE)
    # A credential signed after the service answer is the fresher fact.
    newer = World(tmp_path / "tokens2")
    cache.record_verified(present(newer, f, issued=NOW + 60))
    a = cache.rights_for(who, NOW + 120)
    assert (a.status, a.source, a.obtained_at) == (Status.FRESH, Source.CREDENTIAL, NOW + 60)
    # Names, AMC and the rest carry their own source and time too.
    assert a.record.names.source is Source.CREDENTIAL and a.record.amc.obtained_at == NOW + 60
    cache.close()


# -- sync, opposition, status list -------------------------------------------------------------


def test_sync_refreshes_every_cached_family_and_the_opposition_list(tmp_path):
    world = World(tmp_path / "tokens")
    families = [fam(s, beneficiaries=2) for s in range(40, 48)]
    cache = open_cache(tmp_path, now=NOW + HOUR)
    creds = {}
    for f in families:
        v = present(world, f)
        creds[f.insured.nir] = v.credential_id
        cache.record_verified(v)
    closed, shrunk, gone, opposed = families[:4]
    svc = RightsService(now=lambda: NOW + HOUR)
    for f in families:
        svc.add_family(f)
    svc.close_rights(closed.insured.nir)
    svc.add_family(dataclasses.replace(shrunk, beneficiaries=shrunk.beneficiaries[:1]))
    svc.remove_family(gone.insured.nir)
    svc.oppose(creds[opposed.insured.nir], NOW + 30)
    with svc:
        cache.client = client(svc.url)
        report = cache.sync()
    assert (report.families, report.answered, report.unknown, report.failed) == (8, 8, 1, "")
    assert report.oppositions == 1 and report.rows_changed == 8 * 3
    assert {cache.rights_for(w).status for w in members(closed)} == {Status.EXPIRED}
    assert [cache.rights_for(w).status for w in members(shrunk)] == [
        Status.FRESH,
        Status.FRESH,
        Status.EXPIRED,
    ]
    assert {cache.rights_for(w).reason for w in members(gone)} == {"no_amo_rights"}
    for who in members(opposed):
        a = cache.rights_for(who, credential_id=creds[opposed.insured.nir])
        assert (a.status, a.reason, a.billable) == (Status.BLOCKED, "means_opposed", False)
        assert cache.rights_for(who).status is Status.FRESH  # the person's rights are intact
    for f in families[4:]:
        a = cache.rights_for(insured_id(f.insured))
        assert (a.status, a.source, a.obtained_at) == (Status.FRESH, Source.SERVICE, NOW + HOUR)
    # The next sync with the service down stops at once, says why, and loses nothing.
    cache.client = client(dead_url())
    report = cache.sync()
    assert report.failed and report.answered == 0
    assert cache.counts()["persons"] == 8 * 3
    cache.close()


def test_status_list_deactivation_blocks_that_phone_only(tmp_path):
    cache = open_cache(tmp_path)
    f = fam(51)
    world = World(tmp_path / "tokens")
    v = present(world, f)
    cache.record_verified(v)
    who = insured_id(f.insured)
    assert cache.record_status(v.credential_id, 2, NOW)  # suspended
    assert cache.rights_for(who, credential_id=v.credential_id).reason == "means_deactivated"
    assert not cache.record_status(v.credential_id, 0, NOW - 5)  # older news: ignored
    assert cache.record_status(v.credential_id, 0, NOW + 5)  # suspension lifted
    assert cache.rights_for(who, credential_id=v.credential_id).status is Status.FRESH
    assert cache.rights_for(who, credential_id=b"another!").status is Status.FRESH
    cache.close()


# -- command line ------------------------------------------------------------------------------


def _cli(tmp_path, *args, stdin: str = "", monkeypatch=None, capsys=None):
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cache_main(
        ["--db", str(tmp_path / "rights.db"), "--key", str(tmp_path / "rights.key"), *args]
    )
    out = capsys.readouterr() if capsys is not None else None
    return code, out


def test_cli_status_counts_sync_and_purge(tmp_path, capsys, monkeypatch):
    families = [twins_family(), fam(61), fam(62)]
    with running_service(families) as svc:
        cache = open_cache(tmp_path)
        for f in families:
            cache.record_service(f.insured.nir, client(svc.url).family(f.insured.nir))
        cache.close()
        code, out = _cli(tmp_path, "sync", "--service", svc.url, capsys=capsys)
        assert code == 0 and json.loads(out.out)["answered"] == 3
    code, out = _cli(tmp_path, "status", "--check", capsys=capsys)
    assert code == 0 and "persons       10" in out.out and "full: ok" in out.out
    code, out = _cli(tmp_path, "export-counts", capsys=capsys)
    counts = json.loads(out.out)
    assert counts["persons"] == 10 and counts["families"] == 3
    assert counts["by_source"] == {"service": 10}
    assert sum(counts["by_status"].values()) == 10
    code, out = _cli(tmp_path, "export-counts", "--format", "csv", capsys=capsys)
    assert "persons,10" in out.out.splitlines()
    target = families[0]
    spouse = target.beneficiaries[0]
    code, out = _cli(
        tmp_path,
        "purge",
        "--nir",
        "-",
        "--birth-date",
        str(spouse.birth_date.to_int()),
        "--birth-rank",
        "1",
        "--quality",
        "2",
        stdin=target.insured.nir + "\n",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 0 and "removed 1 row" in out.out
    code, out = _cli(
        tmp_path,
        "purge",
        "--nir",
        "-",
        "--family",
        stdin=families[1].insured.nir + "\n",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert code == 0 and f"removed {len(members(families[1]))} row" in out.out
    code, out = _cli(tmp_path, "purge", "--nir", "123", "--family", capsys=capsys)
    assert code == 2 and "not a valid NIR" in out.err
    code, out = _cli(tmp_path, "export-counts", capsys=capsys)
    assert json.loads(out.out)["persons"] == 10 - 1 - len(members(families[1]))
    for f in families:
        assert f.insured.nir not in out.out


def test_cli_reports_a_rebuild(tmp_path, capsys):
    (tmp_path / "rights.db").write_bytes(b"\x00" * 4096)
    code, out = _cli(tmp_path, "status", capsys=capsys)
    assert code == 1 and "rebuilt" in out.err


@pytest.mark.parametrize("today", [TODAY])
def test_fixture_clock_is_the_token_tests_clock(today):
    from tokens_fixtures import NOW as TOKENS_NOW

    assert TOKENS_NOW == NOW and today.isoformat() == "2026-09-21"


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(-5, 5), st.booleans()), min_size=1, max_size=6
    ),
    st.randoms(),
)
def test_through_the_store_any_order_of_snapshots_gives_the_freshest(answers, rnd):
    """Snapshots of one family (some closing the rights, some dropping a member) written in
    two different orders into two caches: the same verdicts, and those of the freshest."""
    base = fam(71, beneficiaries=2)
    snaps = []
    for kind, dt_, closed in answers:
        f = base if kind == 0 else dataclasses.replace(base, beneficiaries=base.beneficiaries[:1])
        svc = RightsService(now=lambda: NOW)
        svc.add_family(f, as_of=NOW + dt_ * 60)
        if closed:
            svc.close_rights(f.insured.nir, as_of=NOW + dt_ * 60)
        answer = svc.answer(f.insured.nir)
        snaps.append(decode_answer(answer, f.insured.nir, obtained_at=NOW + dt_ * 60 + kind))
    shuffled = snaps[:]
    rnd.shuffle(shuffled)
    with tempfile.TemporaryDirectory() as tmp:
        verdicts = []
        for i, order in enumerate((snaps, shuffled)):
            d = Path(tmp) / str(i)
            d.mkdir()
            cache = open_cache(d, now=NOW + 3600)
            for s in order:
                cache.record_service(base.insured.nir, s)
            verdicts.append(
                [
                    (a.status, a.obtained_at, a.record)
                    for a in (cache.rights_for(w) for w in members(base))
                ]
            )
            cache.close()
    assert verdicts[0] == verdicts[1]
    freshest = max(snaps, key=lambda s: s[0].amo.obtained_at)
    assert verdicts[0][0][1] == freshest[0].amo.obtained_at
