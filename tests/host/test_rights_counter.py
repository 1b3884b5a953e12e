"""The offline rights cache at the counter: transactions opened by really verified presentations
look up each person's rights in the real cache (this PC's SQLite files, and the PostgreSQL
database the counters share: the same tests, issue 17), refresh them from the real simulated
rights service over HTTP (client, retries, circuit breaker), show them through the real local
API and its event stream, and dispensing follows the policy (docs/rights-cache.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import read_events
from backend_fixtures import Backend, backend, pg_server  # noqa: F401 (fixtures)
from billing_fixtures import CIP, FINESS, PHARMACIST, PRESCRIBER
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rights_fixtures import twins_family
from tokens_fixtures import NOW, TODAY, World

from comptoir.api import ApiServer, EventFeed, load_or_create_token
from comptoir.metrics import Metrics
from comptoir.nfc_service import Presentation
from comptoir.opener import TransactionOpener
from comptoir.rights import (
    CircuitBreaker,
    ClientPolicy,
    RightsClient,
    StalenessPolicy,
)
from comptoir.transactions.rights_desk import RightsDesk, who_of
from comptoir_tools.credentials.identities import Family
from comptoir_tools.simulators.rights_service import RightsService

DAY = 86400
FAST = ClientPolicy(timeout=0.5, attempts=3, backoff=0.01, backoff_max=0.02)


class Counter:
    """One pharmacy PC: verifier world, rights service, cache, store, journal, API."""

    def __init__(self, tmp: Path, *, service: bool = True, policy: StalenessPolicy | None = None,
                 cool_down: float = 30.0, service_clock: int | Any = NOW,
                 clock: Any = lambda: NOW, at: Backend | None = None) -> None:
        at = at or Backend("sqlite", None)
        self.tmp = tmp
        self.world = World(tmp / "world")
        self.svc = RightsService(now=service_clock if callable(service_clock) else
                                 lambda: service_clock)
        self.svc.start()
        self.client = RightsClient(self.svc.url, policy=FAST,
                                   breaker=CircuitBreaker(threshold=3, cool_down=cool_down)) \
            if service else None
        self.cache = at.open_cache(tmp, policy=policy or StalenessPolicy(), client=self.client,
                                   clock=clock)
        self.desk = RightsDesk(self.cache, dispense_wait=3.0)
        self.biller = at.biller(tmp / "billing.db")
        self.store = at.transactions(tmp / "tx.db", tmp / "tx.key", self.biller,
                                     rights=self.desk)
        self.metrics = Metrics(dict)
        self.feed = EventFeed(self.metrics)
        self.opener = TransactionOpener(self.store, self.feed, self.metrics)
        self.token = load_or_create_token(tmp / "api-token")
        self.api = ApiServer(self.token, self.store, self.feed, port=0,
                             metrics=self.metrics).start()

    def close(self) -> None:
        self.api.stop()
        self.feed.close()
        self.desk.close()
        self.store.close()
        self.biller.close()
        self.svc.stop()

    def present(self, fam: Family, *, issued: int = NOW - 3600, wait: bool = True) -> str:
        """A verified QR presentation through the event feed, as the daemon hands it over."""
        wallet = self.world.wallet(fam, issued=issued)
        result = self.world.qr(wallet.present_qr(now=NOW))
        assert result.ok, result
        before = set(self.store.ids())
        self.opener.on_event(Presentation("/dev/comptoir-A", "a1b2", 0x8001, "qr", result,
                                          time.monotonic()))
        (tx,) = set(self.store.ids()) - before
        if wait:
            assert self.store.wait_rights(tx, 10)
        return tx

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.api.url + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + self.token})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def view(self, tx: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/v1/transactions/{tx}")
        assert status == 200, body
        return body

    def choose(self, tx: str, person: int) -> dict[str, Any]:
        status, body = self.call("POST", f"/v1/transactions/{tx}/beneficiary", {"person": person})
        assert status == 200, body
        return body

    def dispense(self, tx: str, person: int, *, amo: bool = True) -> tuple[int, Any]:
        return self.call("POST", f"/v1/transactions/{tx}/dispensation", {
            "person": person, "finess": FINESS, "pharmacist_rpps": PHARMACIST,
            "prescriber_rpps": PRESCRIBER, "prescribed_on": str(TODAY - dt.timedelta(days=2)),
            "dispensed_on": str(TODAY), "tiers_payant": {"amo": amo, "amc": False},
            "lines": [{"code": CIP, "quantity": 1, "unit_price": 1000, "base": 1000,
                       "rate": 65}]})


@pytest.fixture
def counter(tmp_path: Path, backend: Backend):  # noqa: F811
    c = Counter(tmp_path, at=backend)
    yield c
    c.close()


def statuses(view: dict[str, Any]) -> list[str]:
    return [p["rights"]["status"] for p in view["people"]]


def test_rights_found_and_valid_then_refreshed_by_the_service(counter: Counter) -> None:
    fam = counter.world.family(21, beneficiaries=2)
    counter.svc.add_family(fam)
    events = counter.feed.subscribe()
    tx = counter.present(fam, wait=False)
    assert counter.store.wait_rights(tx, 10)
    got = _drain(events, want=2)
    # First, before any network: the credential's rights, from the cache; then the refresh is
    # announced, with statuses only.
    assert [(k, e.get("action")) for _, k, e in got] == [("presentation", None),
                                                        ("transaction", "rights")]
    first, later = got[0][2], got[1][2]
    assert first["rights"] == ["fresh", "fresh", "fresh"]
    assert first["rights_service"] == "pending"
    assert later["rights_service"] == "answered" and later["rights"] == ["fresh"] * 3
    text = json.dumps([first, later], ensure_ascii=False)
    assert fam.insured.nir not in text and fam.insured.family_name not in text
    view = counter.view(tx)
    assert view["rights_service"] == "answered" and statuses(view) == ["fresh"] * 3
    for p in view["people"]:
        r = p["rights"]
        assert (r["source"], r["as_of"], r["billable"], r["reason"]) == ("service", NOW, True, "")
        assert r["as_of_iso"] == dt.datetime.fromtimestamp(NOW, dt.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    counter.choose(tx, 2)
    status, body = counter.dispense(tx, 2)
    assert status == 201, body
    basis = body["care_sheet"]["rights"]
    assert (basis["status"], basis["source"], basis["as_of"]) == ("fresh", "service", NOW)
    assert body["people"][2]["rights"] is None  # finished: the basis is on the care sheet
    # The basis outlives the process's memory: read back from transactions.db.
    counter.store._live.clear()
    assert counter.view(tx)["care_sheet"]["rights"]["status"] == "fresh"


def _drain(sub: Any, want: int = 0, timeout: float = 5.0) -> list[tuple[int, str, dict]]:
    out: list[tuple[int, str, dict]] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            item = sub.queue.get(timeout=0.05 if len(out) >= want else
                                 max(0.01, deadline - time.monotonic()))
        except Exception:
            if len(out) >= want or time.monotonic() > deadline:
                return out
            continue
        out.append(item)


def test_stale_within_policy_while_the_service_is_down(counter: Counter) -> None:
    """Credential rights three days old, the service gone: stale_ok, billed, and the sheet says
    on what. The breaker opens after the first patient: nobody after waits on the line."""
    counter.svc.stop()
    fams = [counter.world.family(30 + i, beneficiaries=1) for i in range(5)]
    started = time.perf_counter()
    txs = [counter.present(f, issued=NOW - 3 * DAY) for f in fams]
    assert time.perf_counter() - started < 3
    assert counter.client is not None and counter.client.attempts_made == 3
    for tx in txs:
        view = counter.view(tx)
        assert view["rights_service"] == "unavailable"
        for p in view["people"]:
            r = p["rights"]
            assert (r["status"], r["reason"], r["source"], r["as_of"], r["billable"]) == (
                "stale_ok", "cached_rights", "credential", NOW - 3 * DAY, True)
    counter.choose(txs[0], 1)
    status, body = counter.dispense(txs[0], 1)
    assert status == 201, body
    assert body["care_sheet"]["rights"]["status"] == "stale_ok"
    assert body["care_sheet"]["rights"]["source"] == "credential"


def test_an_older_service_answer_is_stale_but_usable(
        tmp_path: Path, backend: Backend) -> None:  # noqa: F811
    c = Counter(tmp_path, service_clock=NOW - 3 * DAY, at=backend)
    try:
        fam = c.world.family(40, beneficiaries=0)
        c.svc.add_family(fam)
        tx = c.present(fam, issued=NOW - 10 * DAY)
        r = c.view(tx)["people"][0]["rights"]
        assert (r["status"], r["source"], r["as_of"]) == ("stale_ok", "service", NOW - 3 * DAY)
        status, body = c.dispense(tx, 0)
        assert status == 201 and body["care_sheet"]["rights"]["source"] == "service"
    finally:
        c.close()


def test_too_old_rights_allow_no_tiers_payant(
        tmp_path: Path, backend: Backend) -> None:  # noqa: F811
    c = Counter(tmp_path, service=False, at=backend,
                policy=StalenessPolicy(fresh_for=DAY, credential_max_age=2 * DAY))
    try:
        fam = c.world.family(41, beneficiaries=0)
        tx = c.present(fam, issued=NOW - 3 * DAY)
        view = c.view(tx)
        assert view["rights_service"] == "off"
        assert view["people"][0]["rights"]["status"] == "stale_refused"
        status, body = c.dispense(tx, 0)
        assert status == 409 and body["error"] == "rights_unconfirmed"
        assert "person 0" in body["detail"] and "stale_refused" in body["detail"]
        assert c.biller.sheet(tx) is None and c.view(tx)["state"] == "ready"
        status, body = c.dispense(tx, 0, amo=False)  # the patient pays at the counter
        assert status == 201, body
        assert body["care_sheet"]["counter"] == body["care_sheet"]["total"]
        assert body["care_sheet"]["rights"]["status"] == "stale_refused"
    finally:
        c.close()


def test_unknown_person(counter: Counter) -> None:
    """A person the cache does not hold (erased since, service down): unknown, not billable in
    tiers payant; the others of the family keep their own rights."""
    counter.svc.stop()
    fam = counter.world.family(42, beneficiaries=2)
    tx = counter.present(fam)
    v = counter.store._live[tx]
    assert counter.cache.purge(who_of(v, 1)) == 1
    view = counter.view(tx)
    assert statuses(view) == ["fresh", "unknown", "fresh"]
    assert view["people"][1]["rights"]["reason"] == "not_in_cache"
    assert view["people"][1]["rights"]["as_of"] is None
    counter.choose(tx, 1)
    status, body = counter.dispense(tx, 1)
    assert status == 409 and body["error"] == "rights_unconfirmed", body


def test_a_family_unknown_to_the_service_has_its_rights_closed(counter: Counter) -> None:
    fam = counter.world.family(43, beneficiaries=0)  # never given to the service
    tx = counter.present(fam)
    view = counter.view(tx)
    assert view["rights_service"] == "answered"
    r = view["people"][0]["rights"]
    assert (r["status"], r["reason"], r["source"]) == ("expired", "no_amo_rights", "service")
    status, body = counter.dispense(tx, 0)
    assert status == 409 and body["error"] == "rights_closed"


def test_service_down_opens_the_breaker_and_the_cache_serves(
        tmp_path: Path, backend: Backend) -> None:  # noqa: F811
    c = Counter(tmp_path, cool_down=0.5, at=backend)
    try:
        fams = [c.world.family(50 + i, beneficiaries=1) for i in range(4)]
        for f in fams:
            c.svc.add_family(f)
        c.svc.outage = True  # 503 to everything
        t1 = c.present(fams[0])
        assert c.svc.requests == 3 and c.view(t1)["rights_service"] == "unavailable"
        assert statuses(c.view(t1)) == ["fresh", "fresh"]  # the credential's, one hour old
        assert c.view(t1)["people"][0]["rights"]["source"] == "credential"
        t2 = c.present(fams[1])
        assert c.svc.requests == 3, "the breaker let a request through while open"
        assert c.view(t2)["rights_service"] == "unavailable"
        # Back up, after the cool-down: the pharmacist asks again for the waiting patient.
        c.svc.outage = False
        time.sleep(0.6)
        status, view = c.call("POST", f"/v1/transactions/{t2}/rights")
        assert status == 200 and view["rights_service"] == "answered", view
        assert view["people"][1]["rights"]["source"] == "service"
        t3 = c.present(fams[2])
        assert c.view(t3)["rights_service"] == "answered"
        assert c.view(t3)["people"][0]["rights"]["source"] == "service"
    finally:
        c.close()


def test_rights_closed_by_the_insurer_refuse_the_dispensation(counter: Counter) -> None:
    fam = counter.world.family(60, beneficiaries=2)
    counter.svc.add_family(fam)
    counter.svc.close_rights(fam.insured.nir, members=[2])  # the second child only
    tx = counter.present(fam)
    view = counter.view(tx)
    assert statuses(view) == ["fresh", "fresh", "expired"]
    assert view["people"][2]["rights"]["reason"] == "no_amo_rights"
    counter.choose(tx, 2)
    status, body = counter.dispense(tx, 2)
    assert status == 409 and body["error"] == "rights_closed", body
    assert body["detail"].startswith("person 2: AMO rights closed (no_amo_rights, service as of")
    assert fam.insured.nir not in body["detail"]
    # Nothing billed, nothing changed: the pharmacist cancels.
    assert counter.biller.sheet(tx) is None and counter.view(tx)["state"] == "ready"
    status, _ = counter.dispense(tx, 2, amo=False)
    assert status == 409  # closed rights: no care sheet at all
    assert counter.call("POST", f"/v1/transactions/{tx}/cancel")[0] == 200
    status, body = counter.call("POST", f"/v1/transactions/{tx}/rights")
    assert status == 409 and body["error"] == "wrong_state"
    # The same family's insured person, on another presentation, is served.
    tx2 = counter.present(fam)
    counter.choose(tx2, 0)
    status, body = counter.dispense(tx2, 0)
    assert status == 201 and body["care_sheet"]["rights"]["status"] == "fresh"


def test_an_answer_about_another_family_is_rejected(counter: Counter) -> None:
    mine, other = counter.world.family(61, beneficiaries=0), counter.world.family(62, 0)
    counter.svc.add_family(mine)
    counter.svc.add_family(other)
    counter.svc.close_rights(other.insured.nir)
    counter.svc.swap_identity = True
    tx = counter.present(mine)
    view = counter.view(tx)
    assert view["rights_service"] == "rejected"
    r = view["people"][0]["rights"]
    assert (r["status"], r["source"]) == ("fresh", "credential")  # the other's closure: not ours


# --- identity: a person's rights are never shown or billed on another's transaction -------------


def _families(world: World) -> list[Family]:
    """Families that are hard to tell apart: a same-day spouse and twins under one NIR."""
    fams = [world.family(70 + i, beneficiaries=i % 4) for i in range(9)]
    twins = twins_family(99)
    return [*fams, twins]


def _expected(closed: set[int], i: int) -> str:
    return "expired" if i in closed else "fresh"


def test_interleaved_transactions_each_show_and_bill_their_own_persons_rights(
        counter: Counter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="comptoir")
    rnd = random.Random(5)
    fams = _families(counter.world)
    closed: dict[str, set[int]] = {}
    for f in fams:
        counter.svc.add_family(f)
        n = 1 + len(f.beneficiaries)
        shut = {i for i in range(n) if rnd.random() < 0.4}
        if shut:
            counter.svc.close_rights(f.insured.nir, members=shut)
        closed[f.insured.nir] = shut
    # The twins: only the second twin's rights are closed (same NIR, same birth date).
    twins = fams[-1]
    counter.svc.add_family(twins)
    counter.svc.close_rights(twins.insured.nir, members=[3])
    closed[twins.insured.nir] = {3}
    # Every family presented twice, in a shuffled order, refreshes interleaved.
    order = [f for f in fams for _ in range(2)]
    rnd.shuffle(order)
    txs = [(counter.present(f, wait=False), f) for f in order]
    for tx, _ in txs:
        assert counter.store.wait_rights(tx, 20)
    errors: list[str] = []

    def serve(tx: str, fam: Family, person: int) -> None:
        try:
            view = counter.view(tx)
            want = [_expected(closed[fam.insured.nir], i)
                    for i in range(1 + len(fam.beneficiaries))]
            if statuses(view) != want:
                errors.append(f"{tx}: {statuses(view)} != {want}")
            if len(view["people"]) > 1:
                counter.choose(tx, person)
            status, body = counter.dispense(tx, person)
            if want[person] == "expired":
                ok = status == 409 and body["error"] == "rights_closed" and \
                    body["detail"].startswith(f"person {person}:")
            else:
                sheet = counter.biller.sheet(tx)
                ref = counter.store.get(tx).people[person].ref
                ok = status == 201 and sheet is not None and (
                    sheet.insured_nir, sheet.birth_date, sheet.birth_rank) == (
                    ref.insured_nir, ref.birth_date, ref.birth_rank) and \
                    body["care_sheet"]["rights"]["status"] == "fresh"
            if not ok:
                errors.append(f"{tx} person {person}: {status} {body}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(f"{tx}: {e!r}")

    threads = [threading.Thread(target=serve, args=(tx, f, rnd.randrange(1 + len(f.beneficiaries))))
               for tx, f in txs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    for f in fams:  # logs: no NIR, no name
        assert f.insured.nir not in caplog.text and f.insured.family_name not in caplog.text


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(st.sampled_from(["present", "close", "look"]), st.integers(0, 5),
                              st.integers(0, 3)), min_size=1, max_size=30))
def test_any_interleaving_of_presentations_and_closures_keeps_rights_apart(
        tmp_path_factory: pytest.TempPathFactory, backend: Backend,  # noqa: F811
        ops: list[tuple[str, int, int]]) -> None:
    """Six families (one a same-day spouse and twins under one NIR); presentations (each asks
    the service) and the insurer closing single members' rights, in any order: every open
    transaction's person i shows what the insurer last said about that family's member i, and
    nothing about anyone else. The oracle is the test's own model, not the cache."""
    t = [NOW]
    c = Counter(tmp_path_factory.mktemp("interleave"), clock=lambda: t[0],
                service_clock=lambda: t[0], at=backend)
    try:
        fams = [c.world.family(80 + i, beneficiaries=i % 4) for i in range(5)]
        fams.append(twins_family(98))
        for f in fams:
            c.svc.add_family(f)
        shut: list[set[int]] = [set() for _ in fams]  # what the insurer closed so far
        answered: list[set[int] | None] = [None for _ in fams]  # what it last told us
        txs: list[tuple[str, int]] = []
        for op, k, m in ops:
            t[0] += 1  # each step a second later: answers are ordered by time
            f = fams[k]
            if op == "present":
                txs.append((c.present(f), k))
                answered[k] = set(shut[k])
            elif op == "close":
                shut[k].add(m % (1 + len(f.beneficiaries)))
                c.svc.close_rights(f.insured.nir, members=shut[k])
            if op == "look" or op == "present":
                for tx, j in txs:
                    view = c.store.get(tx)
                    g = fams[j]
                    want = ["expired" if answered[j] is not None and i in answered[j] else
                            "fresh" for i in range(1 + len(g.beneficiaries))]
                    assert [r.status for r in view.rights] == want
                    assert {p.ref.insured_nir for p in view.people} == {g.insured.nir}
    finally:
        c.close()


def test_who_of_follows_the_people_order(counter: Counter) -> None:
    fam = dataclasses.replace(twins_family(97))
    tx = counter.present(fam, wait=True)
    v = counter.store._live[tx]
    people = counter.store.get(tx).people
    ids = [who_of(v, p.index) for p in people]
    assert len(set(ids)) == len(ids) == 4  # same-day spouse and twins: four identities
    for p, who in zip(people, ids, strict=True):
        assert (who.nir, who.birth_date, who.birth_rank, who.quality) == (
            p.ref.insured_nir, p.ref.birth_date, p.ref.birth_rank, p.quality)


def test_event_stream_carries_rights_statuses(counter: Counter) -> None:
    fam = counter.world.family(90, beneficiaries=1)
    counter.svc.add_family(fam)
    counter.svc.close_rights(fam.insured.nir, members=[1])
    got: list[dict] = []
    ready = threading.Event()
    t = threading.Thread(target=read_events, args=(counter.api.port, counter.token, 2, got, ready),
                         daemon=True)
    t.start()
    assert ready.wait(5)
    counter.present(fam)
    t.join(10)
    assert [(e["type"], e.get("action")) for e in got] == [("presentation", None),
                                                          ("transaction", "rights")]
    assert got[0]["rights"] == ["fresh", "fresh"]  # the credential's, before the service
    assert got[1]["rights"] == ["fresh", "expired"] and got[1]["rights_service"] == "answered"


def test_views_have_what_openapi_requires(counter: Counter) -> None:
    doc = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
    schemas = doc["components"]["schemas"]
    fam = counter.world.family(91, beneficiaries=1)
    counter.svc.add_family(fam)
    tx = counter.present(fam)
    view = counter.view(tx)
    assert set(schemas["Transaction"]["required"]) <= set(view)
    for p in view["people"]:
        assert set(schemas["Person"]["required"]) <= set(p)
        assert set(schemas["Rights"]["required"]) == set(p["rights"])
        assert p["rights"]["status"] in schemas["Rights"]["properties"]["status"]["enum"]
    assert view["rights_service"] in schemas["Transaction"]["properties"]["rights_service"]["enum"]
    counter.choose(tx, 1)
    status, body = counter.dispense(tx, 1)
    assert status == 201
    assert set(schemas["CareSheet"]["required"]) <= set(body["care_sheet"])
    for code in ("rights_closed", "means_blocked", "rights_unconfirmed"):
        assert code in schemas["Error"]["properties"]["error"]["enum"]


def test_an_opposed_phone_is_blocked(counter: Counter) -> None:
    """The phone was declared lost after it was presented (the opposition list reached the
    cache): its transaction shows `blocked` and no care sheet is made on it."""
    counter.svc.stop()
    fam = counter.world.family(92, beneficiaries=1)
    tx = counter.present(fam)
    v = counter.store._live[tx]
    counter.cache.record_opposition([(v.credential_id, NOW - 60)])
    view = counter.view(tx)
    assert statuses(view) == ["blocked", "blocked"]
    assert view["people"][0]["rights"]["reason"] == "means_opposed"
    counter.choose(tx, 0)
    status, body = counter.dispense(tx, 0, amo=False)
    assert status == 409 and body["error"] == "means_blocked", body
