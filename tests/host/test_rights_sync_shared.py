"""The background rights sync of several counters on one shared cache (issue 17): the counters'
rounds, at the same instants (their tasks started together, days passing on the movable
clock), ask the insurer for each stale family once for the whole pharmacy, not once per
counter; a round that could not reach the service leaves its families to the next round of
any counter. The real PostgreSQL server, the real simulated rights service over HTTP (it
counts the questions per NIR), the real RightsSync rounds from two threads at once."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_fixtures import pg_server, pg_url  # noqa: F401 (fixtures)
from rights_fixtures import DAY, HOUR, NOW, client, fam

from comptoir import clock
from comptoir.rights import RightsCache
from comptoir.rights.sync_task import RightsSync
from comptoir_tools.simulators.rights_service import RightsService

FAMILIES = [fam(400 + i, beneficiaries=i % 3) for i in range(30)]


class CountingService(RightsService):
    """The simulated insurer, counting the families it was asked about."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.asked: collections.Counter[str] = collections.Counter()

    def answer(self, nir: str) -> dict[str, Any] | None:
        with self._lock:
            self.asked[nir] += 1
        return super().answer(nir)


@pytest.fixture
def now() -> Iterator[clock.ManualClock]:
    with clock.use(clock.ManualClock(NOW)) as c:
        yield c  # type: ignore[misc]


@pytest.fixture
def service(now: clock.ManualClock) -> Iterator[CountingService]:
    svc = CountingService(now=now.time)
    for f in FAMILIES:
        svc.add_family(f)
    with svc:
        yield svc


def _counters(pg_url: str, tmp_path: Path, svc: RightsService,  # noqa: F811
              now: clock.ManualClock, n: int = 2) -> list[RightsSync]:
    """n counters' caches on one database (the same key file, as the installer copies it),
    each with its background sync as `start_app` makes it: refresh every hour, families
    older than a day, at most 20 a round."""
    syncs = []
    for i in range(n):
        d = tmp_path / f"counter-{i}"
        d.mkdir()
        if i:
            (d / "rights.key").write_bytes((tmp_path / "counter-0" / "rights.key").read_bytes())
            (d / "rights.key").chmod(0o600)
        cache = RightsCache.open(d / "rights.db", d / "rights.key", url=pg_url, clock=now.time)
        syncs.append(RightsSync(cache, client(svc.url), opposition_every=HOUR,
                                refresh_every=HOUR, older_than=DAY, max_families=20,
                                clock=now.time))
    return syncs


def _fill(cache: RightsCache, svc: CountingService, now: clock.ManualClock) -> None:
    """Every family cached from a service answer two days old (stale)."""
    c = client(svc.url)
    for f in FAMILIES:
        svc.add_family(f, as_of=int(now.time()) - 2 * DAY)
        cache.record_service(f.insured.nir, c.family(f.insured.nir))
        svc.add_family(f)
    c.close()
    svc.asked.clear()


def _round(syncs: list[RightsSync]) -> list[bool]:
    """One refresh round of every counter, at the same instant."""
    barrier = threading.Barrier(len(syncs))
    results: list[bool] = [False] * len(syncs)

    def one(i: int) -> None:
        barrier.wait()
        results[i] = syncs[i].refresh()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(syncs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_counters_refreshing_at_once_ask_for_each_family_once(
        pg_url: str, tmp_path: Path, service: CountingService,  # noqa: F811
        now: clock.ManualClock) -> None:
    syncs = _counters(pg_url, tmp_path, service, now)
    _fill(syncs[0].cache, service, now)
    stuck = FAMILIES[0]  # the insurer's answer about it stays two days old: stale after it
    service.add_family(stuck, as_of=NOW - 2 * DAY)
    nirs = sorted(f.insured.nir for f in FAMILIES)
    for day in range(3):
        assert _round(syncs) == [True, True]
        assert sorted(service.asked) == nirs, day  # every stale family asked...
        assert set(service.asked.values()) == {1}, day  # ...once, by one counter
        assert all(s.last_report is not None and s.last_report.answered for s in syncs)
        service.asked.clear()
        now.advance(HOUR)  # the next round: everything fresh but the stuck family
        assert _round(syncs) == [True, True]
        assert service.asked == {stuck.insured.nir: 1}
        service.asked.clear()
        now.advance(DAY)  # a day later: all stale again
    for s in syncs:
        s.cache.close()
        s.close()


def test_a_round_that_failed_leaves_its_families_to_the_next_counter(
        pg_url: str, tmp_path: Path, service: CountingService,  # noqa: F811
        now: clock.ManualClock) -> None:
    one, two = _counters(pg_url, tmp_path, service, now)
    _fill(one.cache, service, now)
    service.outage = True  # 503 to every request: counter one's round fails
    assert not one.refresh()
    service.outage = False
    service.asked.clear()
    assert two.refresh()  # at once, not a lease later: counter one holds nothing
    assert two.last_report is not None and two.last_report.answered == 20
    now.advance(61)  # counter one's breaker, opened by the outage, lets a request through
    assert one.refresh()
    assert sum(service.asked.values()) == len(FAMILIES) == len(service.asked)
    for s in (one, two):
        s.cache.close()
        s.close()



def test_a_damaged_row_met_while_claiming_leaves_no_family_claimed_for_nothing(
        pg_url: str, tmp_path: Path, service: CountingService,  # noqa: F811
        now: clock.ManualClock) -> None:
    """The rows of one of the oldest families fail authentication while a round learns the
    NIRs of the families it claimed: the damaged rows are removed (rebuild.repair) and the
    round goes on with the oldest families left, not past the ones it had just claimed."""
    import psycopg

    (one,) = _counters(pg_url, tmp_path, service, now, n=1)
    _fill(one.cache, service, now)
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("SET search_path TO comptoir_rights")
        (family,) = db.execute("SELECT family FROM persons ORDER BY family LIMIT 1").fetchone()
        db.execute("UPDATE persons SET row = overlay(row placing '\\x5a5a'::bytea from 20) "
                   "WHERE family = %s", (family,))
    assert one.refresh()
    assert len(one.cache.rebuilds) == 1 and one.cache.rebuilds[0].removed >= 1
    assert one.last_report is not None
    assert (one.last_report.families, one.last_report.answered) == (20, 20)
    assert len(service.asked) == 20
    one.cache.close()
    one.close()
