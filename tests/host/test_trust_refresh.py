"""Weeks of running (issue 15): the daemon's clock moved by a test, and trust material kept
current from the simulated insurer's publication and the trust directory, with a real HTTP
server, real files and the real verifier."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from comptoir import clock
from comptoir.clock import ManualClock
from comptoir.presentations import load_verifier
from comptoir.rights.breaker import BreakerState, CircuitBreaker
from comptoir.tokens.reasons import Reason
from comptoir.tokens.refresh import TrustRefresher
from comptoir.tokens.status import NotNewer, StatusLists
from comptoir.tokens.trust import TrustStore
from comptoir.tokens.verify import Verifier
from comptoir_tools.credentials.identities import family
from comptoir_tools.credentials.pki import DAY, TestPki, publish
from comptoir_tools.credentials.wallet import Wallet
from comptoir_tools.simulators.publication import Publication

NOW = 1_790_000_000
HOUR = 3600


def _wallet(issuer: Any, seed: int, now: int) -> Wallet:
    fam = family(seed, beneficiaries=0, today=dt.datetime.fromtimestamp(now, dt.UTC).date())
    cred, device = issuer.activate(fam, now=now - 60)
    return Wallet(cred, device)


class Pharmacy:
    """A trust directory published at NOW, the insurer's publication over HTTP, and the
    daemon's verifier and refresher, all on one manual clock."""

    def __init__(self, tmp: Path, c: ManualClock) -> None:
        self.clock = c
        self.pki = TestPki(5, now=NOW)
        self.trust_dir = tmp / "trust"
        self.trust_dir.mkdir()
        self.pub = Publication(self.pki, clock=c.time).start()
        self.wallet = _wallet(self.pki.issuers[0], 1, NOW)  # before publishing: on the list
        publish(self.pki, self.trust_dir, NOW, DAY, 3 * DAY)
        self.verifier, _ = load_verifier(self.trust_dir, tmp / "tokens")
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.refresher = TrustRefresher(self.verifier.trust, self.verifier.status,
                                        self.trust_dir, url=self.pub.url,
                                        publish=lambda k, d: self.events.append((k, d)))

    def qr(self, wallet: Wallet) -> Any:
        return self.verifier.verify_qr(wallet.present_qr(now=int(self.clock.time())))

    def hours(self, n: int, *, publish_daily: bool = True) -> None:
        for _ in range(n):
            self.clock.advance(HOUR)
            if publish_daily and int(self.clock.time() - NOW) % DAY == 0:
                self.pub.publish()
            self.refresher.check()

    def close(self) -> None:
        self.pub.stop()
        self.verifier.state.close()


@pytest.fixture
def pharmacy(tmp_path: Path):
    with clock.use(ManualClock(NOW)) as c:
        p = Pharmacy(tmp_path, c)  # type: ignore[arg-type]
        try:
            yield p
        finally:
            p.close()


def test_the_clock_a_test_moves(tmp_path: Path) -> None:
    """The daemon's parts read time from comptoir.clock: a verifier and a breaker built with
    their defaults see days pass when a test advances the clock."""
    with clock.use(ManualClock(NOW)) as c:
        pki = TestPki(3, now=NOW)
        w = _wallet(pki.issuers[0], 2, NOW)
        trust = TrustStore([pki.anchor])
        trust.load(pki.trust_list(now=NOW), NOW)
        status = StatusLists(trust)
        status.load(pki.issuers[0].status_list(now=NOW), NOW)
        from comptoir.tokens.challenges import ChallengeRegistry
        from comptoir.tokens.replay import VerifierState

        state = VerifierState(tmp_path / "j", pepper=b"p" * 32)
        v = Verifier(trust, status, state, ChallengeRegistry())
        assert v.verify_qr(w.present_qr(now=NOW)).ok
        c.advance(5 * DAY)  # the trust list (1 day + 3 days' grace) is over
        later = int(clock.now())
        assert later == NOW + 5 * DAY
        assert v.verify_qr(w.present_qr(now=later)).reason is Reason.TRUST_LIST_EXPIRED
        state.close()
        b = CircuitBreaker(threshold=1, cool_down=600, max_cool_down=600)
        b.failure()
        assert b.state is BreakerState.OPEN
        c.advance(600)
        assert b.state is BreakerState.HALF_OPEN


def test_a_status_list_replaces_the_held_one_only_when_strictly_newer() -> None:
    pki = TestPki(4, now=NOW)
    issuer = pki.issuers[0]
    trust = TrustStore([pki.anchor])
    trust.load(pki.trust_list(now=NOW), NOW)
    status = StatusLists(trust)
    w = _wallet(issuer, 3, NOW)
    status.load(issuer.status_list(now=NOW), NOW)
    issuer.set_status(0, 1)  # deactivated, but published with the same iat: not taken
    with pytest.raises(NotNewer):
        status.load(issuer.status_list(now=NOW), NOW)
    assert status.status(issuer.status_list_id, 0, NOW) == 0
    with pytest.raises(NotNewer):  # an older one replayed
        status.load(issuer.status_list(now=NOW - 10), NOW)
    status.load(issuer.status_list(now=NOW + 1), NOW + 1)
    assert status.status(issuer.status_list_id, 0, NOW + 1) == 1
    assert w is not None


def test_thirty_days_from_the_publication(pharmacy: Pharmacy) -> None:
    """Without a refresh the verifier refuses everything after 4 days; with it, 30 days pass
    with the insurer publishing daily, a phone deactivated on day 10 refused within one list
    period (ttl 1 h), the issuer key rotated on day 15 and the list signer's on day 20."""
    p = pharmacy
    p.refresher.check()
    assert p.qr(p.wallet).ok
    lost = _wallet(p.pki.issuers[0], 4, NOW)  # activated after the first publication
    assert p.qr(lost).ok
    new_phone = None
    for day in range(1, 31):
        p.hours(24)
        assert p.qr(p.wallet).ok, (day, p.qr(p.wallet))
        if day == 10:
            p.pki.issuers[0].set_status(1, 1)  # declared lost to the fund
            p.pub.publish()
            deactivated_at = p.clock.time()
            while p.qr(lost).ok:
                p.hours(1, publish_daily=False)
                assert p.clock.time() - deactivated_at <= HOUR + 60
            assert p.qr(lost).reason is Reason.CREDENTIAL_REVOKED
        if day == 15:
            issuer = p.pub.rotate_issuer("CPAM TEST 1 bis")
            new_phone = _wallet(issuer, 5, int(p.clock.time()))
            assert p.qr(new_phone).reason is Reason.ISSUER_UNKNOWN  # not published yet
            p.pub.publish()
            p.refresher.check()  # not due yet: the held lists are fresh
            p.hours(1)
            assert p.qr(new_phone).ok
        if day == 20:
            p.pub.rotate_list_signer("2")
            p.pub.publish()
            seq = p.verifier.trust.current.sequence  # type: ignore[union-attr]
            p.hours(1)
            assert p.verifier.trust.current.sequence > seq  # type: ignore[union-attr]
        if new_phone is not None:
            assert p.qr(new_phone).ok, day
    assert p.refresher.report()["state"] == "ok"
    assert not [e for e in p.events if e[1]["state"] != "ok"]
    # What was fetched was kept: a restart starts from it.
    kept = TrustStore([p.pki.anchor])
    kept.load((p.trust_dir / "trust-list.cbor").read_bytes(), int(p.clock.time()))
    assert kept.current.issued_at > NOW + 29 * DAY  # type: ignore[union-attr]
    assert json.loads(p.pub.file("index.json") or b"")["status_lists"] == [
        "status-1.cbor", "status-2.cbor"]
    assert (p.trust_dir / "status-2.cbor").exists()


def test_an_outage_keeps_the_last_good_lists_and_alerts_before_the_grace_ends(
        pharmacy: Pharmacy) -> None:
    p = pharmacy
    p.refresher.check()
    p.pub.outage = True
    p.hours(25, publish_daily=False)  # past the lists' exp (1 day): in grace
    assert p.qr(p.wallet).ok
    report = p.refresher.report()
    assert report["state"] == "grace" and report["publication"]["last_error"]
    alerts = [d for k, d in p.events if k == "trust"]
    assert {a["state"] for a in alerts} == {"grace"}
    assert all(a["grace_ends_at"] - p.clock.time() > 2 * DAY for a in alerts)
    lines = "\n".join(p.refresher.metric_lines())
    assert 'comptoir_trust_list_expired{kind="trust",list="trust_list"} 1' in lines
    assert 'comptoir_trust_fetches_total{result="failed"}' in lines
    # A bad file from the publication changes nothing either.
    p.pub.outage = False
    p.pub.publish()
    good = p.pub._files["trust-list.cbor"]
    p.pub._files["trust-list.cbor"] = good[:-3] + b"xyz"
    p.hours(2, publish_daily=False)
    assert p.refresher.report()["state"] == "grace" and p.qr(p.wallet).ok
    p.pub._files["trust-list.cbor"] = good
    p.hours(2, publish_daily=False)  # the retry comes (backoff below an hour here)
    assert p.refresher.report()["state"] == "ok", p.refresher.report()
    assert [d["state"] for k, d in p.events if k == "trust"][-1] == "ok"


def test_files_dropped_in_the_trust_directory_are_picked_up(tmp_path: Path) -> None:
    with clock.use(ManualClock(NOW)) as c:
        p = Pharmacy(tmp_path, c)  # type: ignore[arg-type]
        try:
            refresher = TrustRefresher(p.verifier.trust, p.verifier.status, p.trust_dir)
            refresher.check()
            c.advance(2 * DAY)
            before = p.verifier.trust.current.sequence  # type: ignore[union-attr]
            publish(p.pki, p.trust_dir, int(c.time()), DAY, 3 * DAY)  # the admin's copy
            refresher.check()
            assert p.verifier.trust.current.sequence == before + 1  # type: ignore[union-attr]
            assert refresher.report()["state"] == "ok"
            # An older list dropped later is refused; the held one stays.
            (p.trust_dir / "trust-list.cbor").write_bytes(
                p.pki.trust_list(now=int(c.time()), sequence=1))
            refresher.check()
            assert p.verifier.trust.current.sequence == before + 1  # type: ignore[union-attr]
        finally:
            p.close()


def test_refresher_thread_stops(pharmacy: Pharmacy) -> None:
    stop = threading.Event()
    pharmacy.refresher.check_every = 0.05
    t = threading.Thread(target=pharmacy.refresher.run, args=(stop,))
    t.start()
    stop.set()
    t.join(timeout=5)
    assert not t.is_alive()
