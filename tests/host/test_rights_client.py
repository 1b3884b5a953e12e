"""The rights-service client against the real simulated HTTP service on 127.0.0.1: retries
with backoff, timeouts, the circuit breaker, strict answers (never about someone else)."""

from __future__ import annotations

import contextlib
import random
import time

import pytest
from rights_fixtures import NOW, client, fam, members, running_service

from comptoir.rights import (
    BreakerState,
    CircuitBreaker,
    ClientPolicy,
    RightsClient,
    ServiceError,
    ServiceUnavailable,
    Source,
)

FAMS = [fam(s) for s in range(1, 6)]
NIR = FAMS[0].insured.nir


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_answer_is_parsed_into_the_family_records():
    with running_service(FAMS) as svc:
        records = client(svc.url).family(NIR)
    assert [r.who for r in records] == members(FAMS[0])
    assert all(r.amo.source is Source.SERVICE and r.amo.obtained_at == NOW for r in records)
    assert records[0].names.value.family_name == FAMS[0].insured.family_name


def test_unknown_nir_is_none_not_an_error():
    with running_service(FAMS[1:]) as svc:
        c = client(svc.url)
        assert c.family(NIR) is None
        assert c.breaker.state is BreakerState.CLOSED


def test_transient_errors_are_retried_with_growing_backoff():
    sleeps: list[float] = []
    pol = ClientPolicy(timeout=1, attempts=4, backoff=0.1, backoff_max=0.3)
    with running_service(FAMS) as svc:
        svc.fail_next(3, 500)
        c = client(svc.url, threshold=10, policy=pol, sleep=sleeps.append, rng=random.Random(1))
        assert c.family(NIR) is not None
        assert svc.requests == 4
    assert len(sleeps) == 3
    # Full jitter: each wait is within its doubling (capped) bound.
    for wait, bound in zip(sleeps, (0.1, 0.2, 0.3), strict=True):
        assert 0 <= wait <= bound


def test_exhausted_retries_raise_unavailable():
    with running_service(FAMS) as svc:
        svc.outage = True
        c = client(svc.url, threshold=10)
        with pytest.raises(ServiceUnavailable, match="after 3 attempts: HTTP 503"):
            c.family(NIR)
        assert svc.requests == 3


def test_circuit_opens_and_stops_hammering_then_half_opens():
    clock = FakeClock()
    with running_service(FAMS) as svc:
        svc.outage = True
        breaker = CircuitBreaker(threshold=3, cool_down=30, clock=clock)
        c = RightsClient(
            svc.url, policy=ClientPolicy(timeout=1, attempts=3, backoff=0.001), breaker=breaker
        )
        with pytest.raises(ServiceUnavailable):
            c.family(NIR)
        assert breaker.state is BreakerState.OPEN and svc.requests == 3
        started = time.perf_counter()
        for _ in range(50):  # fifty patients at the counter: no request goes out
            with pytest.raises(ServiceUnavailable, match="circuit open"):
                c.family(NIR)
        assert svc.requests == 3
        assert time.perf_counter() - started < 0.5
        clock.t += 30
        assert breaker.state is BreakerState.HALF_OPEN
        with pytest.raises(ServiceUnavailable):  # the trial fails: one request, open again
            c.family(NIR)
        assert svc.requests == 4 and breaker.state is BreakerState.OPEN
        clock.t += 30  # the cool-down doubled after a failed trial
        assert breaker.state is BreakerState.OPEN
        clock.t += 30
        svc.outage = False
        assert c.family(NIR) is not None
        assert breaker.state is BreakerState.CLOSED and svc.requests == 5


def test_timeouts_are_bounded_and_retried():
    pol = ClientPolicy(timeout=0.1, attempts=2, backoff=0.01)
    with running_service(FAMS, latency=0.5) as svc:
        c = client(svc.url, threshold=10, policy=pol)
        started = time.perf_counter()
        with pytest.raises(ServiceUnavailable, match="timeout"):
            c.family(NIR)
        assert time.perf_counter() - started < 0.45
        svc.latency = 0.0
        time.sleep(0.5)  # let the slow handlers finish
        assert c.family(NIR) is not None  # a fresh connection after the timeouts


def test_service_gone_is_unavailable_quickly():
    with running_service(FAMS) as svc:
        c = client(svc.url)
        assert c.family(NIR) is not None  # a kept-alive connection exists
    started = time.perf_counter()
    with pytest.raises(ServiceUnavailable):
        c.family(NIR)
    assert time.perf_counter() - started < 1.0


def test_answer_about_another_person_is_refused_and_not_retried():
    with running_service(FAMS, swap_identity=True) as svc:
        c = client(svc.url)
        with pytest.raises(ServiceError, match="another insured person"):
            c.family(NIR)
        assert svc.requests == 1
        with pytest.raises(ServiceError):
            c.families([NIR, FAMS[1].insured.nir])


def test_flaky_service_is_mostly_served_through_retries():
    with running_service(FAMS, error_rate=0.3) as svc:
        c = client(svc.url, threshold=50)
        ok = 0
        for _ in range(40):
            with contextlib.suppress(ServiceUnavailable):
                ok += c.family(NIR) is not None
        assert ok >= 30  # 1 - 0.3^3 ≈ 97 % expected
        assert svc.requests > 40


def test_batch_answers_in_order_with_unknowns():
    unknown = fam(77).insured.nir
    with running_service(FAMS) as svc:
        c = client(svc.url)
        nirs = [f.insured.nir for f in FAMS] + [unknown]
        out = c.families(nirs)
        assert svc.requests == 1
    assert list(out) == nirs and out[unknown] is None
    for f in FAMS:
        assert [r.who for r in out[f.insured.nir]] == members(f)


def test_service_clock_ahead_does_not_make_answers_fresher_than_now():
    with running_service(FAMS) as svc:
        svc.add_family(FAMS[0], as_of=NOW + 86400)
        records = client(svc.url, clock=lambda: NOW).family(NIR)
    assert all(r.amo.obtained_at == NOW for r in records)


def test_opposition_list_is_read_from_a_sequence_number():
    with running_service(FAMS) as svc:
        svc.oppose(b"\x01" * 8, NOW - 5)
        svc.oppose(b"\x02" * 8, NOW - 4)
        c = client(svc.url)
        first = c.oppositions(0)
        assert first.seq == 2 and first.entries == [(b"\x01" * 8, NOW - 5), (b"\x02" * 8, NOW - 4)]
        assert c.oppositions(2).entries == []


def test_bad_urls_are_refused():
    for url in ("ftp://x", "127.0.0.1:80", "http://"):
        with pytest.raises(ValueError):
            RightsClient(url)


@pytest.mark.parametrize("status", [400, 403, 410])
def test_a_4xx_during_the_half_open_trial_settles_the_breaker(status):
    """Issue 15: an answer that is not retried (a 4xx) during the half-open trial left the trial
    'out' for ever: the counter and the background sync (sharing the breaker) stayed on the
    offline cache until a restart. The service answered: the circuit closes."""
    clock = FakeClock()
    with running_service(FAMS) as svc:
        svc.outage = True
        breaker = CircuitBreaker(threshold=2, cool_down=30, clock=clock)
        pol = ClientPolicy(timeout=1, attempts=2, backoff=0.001)
        counter = RightsClient(svc.url, policy=pol, breaker=breaker)
        sync = RightsClient(svc.url, policy=pol, breaker=breaker)  # the background sync's
        with pytest.raises(ServiceUnavailable):
            counter.family(NIR)
        assert breaker.state is BreakerState.OPEN
        svc.outage = False
        clock.t += 30
        svc.fail_next(1, status)
        with pytest.raises(ServiceError, match=f"HTTP {status}"):
            counter.family(NIR)  # the half-open trial, answered with a 4xx
        assert breaker.state is BreakerState.CLOSED
        assert sync.oppositions(0).seq == 0  # the sync's next round goes out at once
        assert counter.family(NIR) is not None


def test_a_trial_that_ends_in_an_unexpected_error_frees_the_breaker(monkeypatch):
    clock = FakeClock()
    with running_service(FAMS) as svc:
        breaker = CircuitBreaker(threshold=1, cool_down=30, clock=clock)
        c = RightsClient(svc.url, policy=ClientPolicy(timeout=1, attempts=1), breaker=breaker)
        breaker.failure()
        clock.t += 30

        def boom(*a, **k):
            raise RuntimeError("a bug")

        monkeypatch.setattr(c, "_once", boom)
        with pytest.raises(RuntimeError):
            c.family(NIR)
        monkeypatch.undo()
        assert breaker.allow()  # the trial is not held for ever
