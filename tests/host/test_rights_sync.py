"""The pieces of the background rights sync, on the real cache (this PC's SQLite file, and the
PostgreSQL database the counters share: the same tests) and the real simulated rights service
over HTTP: a bounded refresh asks the oldest families first, stops between
batches when told, and the opposition list is read from where the cache left it. (The task
itself, run by `start_app`, is tested in test_services.py.)"""

from __future__ import annotations

import threading
from pathlib import Path

from backend_fixtures import Backend, backend, pg_server  # noqa: F401 (fixtures)
from rights_fixtures import DAY, HOUR, NOW, client, fam

from comptoir.metrics import Metrics
from comptoir.rights import RightsCache, Source, Status, insured_id
from comptoir.rights.sync_task import RightsSync
from comptoir_tools.credentials.identities import Family
from comptoir_tools.simulators.rights_service import RightsService

AGES = [5 * DAY, 4 * DAY, 3 * DAY, 2 * DAY, HOUR]  # of each family's cached rights


def _cached(at: Backend, tmp_path: Path, svc: RightsService
            ) -> tuple[list[Family], RightsCache]:
    """Five families cached from service answers of these ages; the service then answers
    as of NOW."""
    families = [fam(200 + i, beneficiaries=1) for i in range(len(AGES))]
    cache = at.open_cache(tmp_path)
    cache.client = client(svc.url)
    for f, age in zip(families, AGES, strict=True):
        svc.add_family(f, as_of=NOW - age)
        cache.record_service(f.insured.nir, cache.client.family(f.insured.nir))
    for f in families:
        svc.add_family(f)
    return families, cache


def _obtained(cache: RightsCache, f: Family) -> int | None:
    return cache.rights_for(insured_id(f.insured)).obtained_at


def test_a_bounded_refresh_asks_the_oldest_families_first(backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    with RightsService(now=lambda: NOW) as svc:
        families, cache = _cached(backend, tmp_path, svc)
        before = svc.requests
        report = cache.sync(older_than=DAY, limit=2, oppositions=False)
        assert (report.families, report.answered, report.failed) == (2, 2, "")
        assert svc.requests - before == 1  # one batch
        assert [_obtained(cache, f) for f in families] == [
            NOW, NOW, NOW - 3 * DAY, NOW - 2 * DAY, NOW - HOUR]
        report = cache.sync(older_than=DAY, limit=2, oppositions=False)
        assert report.families == 2
        assert [_obtained(cache, f) for f in families] == [NOW] * 4 + [NOW - HOUR]
        report = cache.sync(older_than=DAY, limit=2, oppositions=False)
        assert report.families == 0 and svc.requests - before == 2  # nothing asked
        assert cache.opposition_seq == 0  # oppositions=False: not pulled
        cache.close()


def test_a_refresh_told_to_stop_asks_nothing(backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    with RightsService(now=lambda: NOW) as svc:
        families, cache = _cached(backend, tmp_path, svc)
        before = svc.requests
        stop = threading.Event()
        stop.set()
        report = cache.sync(older_than=DAY, stop=stop)
        assert (report.families, report.answered, report.failed) == (4, 0, "stopped")
        assert not report.unavailable and svc.requests == before
        assert [_obtained(cache, f) for f in families] == [NOW - a for a in AGES]
        cache.close()


def test_the_opposition_list_is_read_from_where_the_cache_left_it(
        backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    with RightsService(now=lambda: NOW) as svc:
        svc.oppose(b"phone-1", NOW - 10)
        svc.oppose(b"phone-2", NOW - 5)
        cache = backend.open_cache(tmp_path)
        c = client(svc.url)
        assert cache.sync_oppositions(c) == (2, 2)
        assert cache.sync_oppositions(c) == (0, 2)
        svc.oppose(b"phone-3", NOW)
        cache.close()
        cache = backend.open_cache(tmp_path)  # the position is kept (the file, the database)
        assert cache.opposition_seq == 2
        assert cache.sync_oppositions(c) == (1, 3)
        who = insured_id(fam(210).insured)
        for phone in (b"phone-1", b"phone-2", b"phone-3"):
            assert cache.store.means(phone).source is Source.OPPOSITION  # type: ignore[union-attr]
            # Blocked whoever presents it; a person never seen is still just unknown.
            assert cache.rights_for(who, credential_id=phone).status is Status.BLOCKED
        assert cache.rights_for(who).status is Status.UNKNOWN
        c.close()
        cache.close()


def test_one_round_by_hand_reports_to_metrics(backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    """RightsSync's rounds without its thread: what the metrics say after each."""
    with RightsService(now=lambda: NOW) as svc:
        families, cache = _cached(backend, tmp_path, svc)
        svc.oppose(b"phone-1", NOW)
        metrics = Metrics(dict)
        sync = RightsSync(cache, client(svc.url, threshold=1, cool_down=60), metrics=metrics,
                          opposition_every=1, refresh_every=1, older_than=DAY, max_families=3,
                          clock=lambda: NOW)
        assert sync.pull_oppositions() and sync.refresh()
        text = metrics.render()
        assert "comptoir_rights_opposition_seq 1" in text
        assert 'comptoir_rights_sync_rounds_total{kind="refresh",result="ok"} 1' in text
        assert f'comptoir_rights_sync_last_success_timestamp_seconds{{kind="refresh"}} {NOW}' \
            in text
        assert "comptoir_rights_families_refreshed_total 3" in text
        svc.stop()
        assert not sync.refresh()  # one family left, the service gone: one attempt, open
        assert not sync.pull_oppositions()  # breaker open: no request, fails at once
        text = metrics.render()
        assert 'comptoir_rights_sync_rounds_total{kind="refresh",result="unavailable"} 1' in text
        assert 'comptoir_rights_sync_rounds_total{kind="opposition",result="unavailable"} 1' \
            in text
        assert "comptoir_rights_service_reachable 0" in text
        assert sync.last_report is not None and sync.last_report.unavailable
        sync.close()
        cache.close()
        for f in families:
            assert f.insured.nir not in text


def test_one_unusable_answer_does_not_stop_the_refresh(backend: Backend, tmp_path: Path) -> None:  # noqa: F811
    """The service answers about another person for the oldest family: the batch is refused
    whole by the client, its families are asked one by one, the bad answer is skipped (nothing
    of it stored) and every other family is refreshed."""
    with RightsService(now=lambda: NOW) as svc:
        families, cache = _cached(backend, tmp_path, svc)
        oldest, other = families[0], families[1]
        svc.families[oldest.insured.nir] = (other, None)  # a mix-up at the insurer
        report = cache.sync(older_than=DAY, oppositions=False)
        assert (report.families, report.answered, report.rejected, report.failed) == (
            4, 3, 1, "")
        assert [_obtained(cache, f) for f in families] == [
            NOW - 5 * DAY, NOW, NOW, NOW, NOW - HOUR]
        # Nobody got the other family's data: each person still has their own record.
        for f in families:
            record = cache.rights_for(insured_id(f.insured)).record
            assert record is not None and record.who == insured_id(f.insured)
        cache.close()
