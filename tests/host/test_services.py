"""`start_app` as `comptoir run` calls it, from a config: the rights cache and the rights
service client wired to the transactions, and lots closed by age by a periodic task that stops
with the services. Real SQLite, real HTTP, the real simulated rights service."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import SubscribableDaemon, call
from billing_fixtures import CIP, FINESS, PHARMACIST, PRESCRIBER
from tokens_fixtures import NOW, TODAY, World

from comptoir.app import lots_every, start_app
from comptoir.config import ConfigError, from_dict
from comptoir.nfc_service import Presentation
from comptoir.rights import RightsCache, RightsClient, Status, insured_id
from comptoir_tools.simulators.rights_service import RightsService


def _config(tmp: Path, **sections: dict[str, Any]) -> Any:
    data: dict[str, Any] = {"paths": {"data_dir": "data", "keys_dir": "keys"},
                            "api": {"port": 0, "token_file": "api-token"}}
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    return from_dict(data, tmp)


def _present(world: World, daemon: SubscribableDaemon, fam: Any, store: Any) -> str:
    return _show(world, daemon, world.wallet(fam), store)


def _show(world: World, daemon: SubscribableDaemon, wallet: Any, store: Any) -> str:
    """One QR presentation of this phone, as the daemon hands it over -> the transaction."""
    result = world.qr(wallet.present_qr(now=NOW))
    assert result.ok, result
    before = set(store.ids())
    daemon.publish(Presentation("/dev/comptoir-A", "a1b2", 1, "qr", result, time.monotonic()))
    (tx,) = set(store.ids()) - before
    return tx


def _dispensation(person: int) -> dict[str, Any]:
    return {"person": person, "finess": FINESS, "pharmacist_rpps": PHARMACIST,
            "prescriber_rpps": PRESCRIBER, "prescribed_on": str(TODAY - dt.timedelta(days=2)),
            "dispensed_on": str(TODAY), "tiers_payant": {"amo": True, "amc": False},
            "lines": [{"code": CIP, "quantity": 1, "unit_price": 1000, "base": 1000,
                       "rate": 65}]}


def test_rights_service_from_config_and_lots_closed_by_age(tmp_path: Path) -> None:
    world = World(tmp_path / "world")
    fam = world.family(12, beneficiaries=1)
    with RightsService() as svc:
        svc.add_family(fam)
        svc.close_rights(fam.insured.nir, members=[1])
        cfg = _config(tmp_path, cache={"service_url": svc.url, "service_timeout_ms": 500},
                      billing={"lot_max_age_s": 2})
        daemon = SubscribableDaemon()
        services = start_app(cfg, daemon)
        try:
            assert services.api is not None and services.rights is not None
            base, token = services.api.url, (tmp_path / "api-token").read_text().strip()
            tx = _present(world, daemon, fam, services.store)
            assert services.store.wait_rights(tx, 10)
            status, view = call(base, token, "GET", f"/v1/transactions/{tx}")
            assert status == 200 and view["rights_service"] == "answered"
            assert [p["rights"]["status"] for p in view["people"]] == ["fresh", "expired"]
            # The closed child: refused by name; the insured person: billed.
            call(base, token, "POST", f"/v1/transactions/{tx}/beneficiary", {"person": 1})
            status, body = call(base, token, "POST", f"/v1/transactions/{tx}/dispensation",
                                 _dispensation(1))
            assert status == 409 and body["error"] == "rights_closed"
            call(base, token, "POST", f"/v1/transactions/{tx}/cancel")
            tx2 = _present(world, daemon, fam, services.store)
            call(base, token, "POST", f"/v1/transactions/{tx2}/beneficiary", {"person": 0})
            status, body = call(base, token, "POST", f"/v1/transactions/{tx2}/dispensation",
                                 _dispensation(0))
            assert status == 201 and body["care_sheet"]["lot"] is None, body
            assert body["care_sheet"]["rights"]["source"] == "service"
            # Not full (lot_size 1000), but two seconds old: the periodic task closes it.
            deadline = time.monotonic() + 10
            lot = None
            while time.monotonic() < deadline and lot is None:
                time.sleep(0.2)
                lot = call(base, token, "GET", f"/v1/transactions/{tx2}")[1]["care_sheet"]["lot"]
            assert lot == 1
        finally:
            started = time.monotonic()
            services.stop()
        assert time.monotonic() - started < 5
        assert not any(t.health() == "running" for t in services.tasks)
        assert not [t for t in threading.enumerate() if t.name in (
            "billing lots by age", "transactions purge", "rights refresh", "rights sync")]


def test_lots_check_interval() -> None:
    assert lots_every(_config(Path("."))) == 60.0
    assert lots_every(_config(Path("."), billing={"lot_max_age_s": 2})) == 0.5
    assert lots_every(_config(Path("."), billing={"lot_max_age_s": 120})) == 30.0


def test_without_a_service_the_cache_alone_answers(tmp_path: Path) -> None:
    world = World(tmp_path / "world")
    daemon = SubscribableDaemon()
    services = start_app(_config(tmp_path), daemon)
    try:
        tx = _present(world, daemon, world.family(13, beneficiaries=0), services.store)
        view = services.store.get(tx)
        assert view.rights_service == "off" and len(view.rights) == 1
        # The credential's rights, from the cache; their age is the real clock's.
        assert view.rights[0].source == "credential"
    finally:
        services.stop()


def test_cache_disabled(tmp_path: Path) -> None:
    world = World(tmp_path / "world")
    daemon = SubscribableDaemon()
    services = start_app(_config(tmp_path, cache={"enabled": False}), daemon)
    try:
        tx = _present(world, daemon, world.family(14, beneficiaries=0), services.store)
        view = services.store.get(tx)
        assert view.rights == () and view.rights_service is None
        assert not (tmp_path / "data" / "rights.db").exists()
    finally:
        services.stop()


@pytest.mark.parametrize("url", ["ftp://x", "http://", "rights.example", "http://h/?a=1"])
def test_bad_service_url_names_the_key(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"^cache\.service_url:"):
        _config(tmp_path, cache={"service_url": url})


# --- the background rights sync: opposition list and refresh of old families ----------------

SYNC_THREADS = ("rights sync", "rights refresh", "billing lots by age", "transactions purge")


def _stop_cleanly(services: Any) -> None:
    started = time.monotonic()
    services.stop()
    assert time.monotonic() - started < 5
    assert not any(t.health() == "running" for t in services.tasks)
    assert not [t for t in threading.enumerate() if t.name in SYNC_THREADS]


def _until(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.02)
    return result


def _metrics(base: str) -> str:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        return r.read().decode()


def _people(base: str, token: str, tx: str) -> list[tuple[str, str]]:
    status, view = call(base, token, "GET", f"/v1/transactions/{tx}")
    assert status == 200, view
    return [(p["rights"]["status"], p["rights"]["reason"]) for p in view["people"]]


def _ok_rounds(services: Any, kind: str) -> int:
    return services.metrics.sync_rounds.get((("kind", kind), ("result", "ok")), 0)


def _prefill(cfg: Any, svc: RightsService, families: list[Any]) -> None:
    """The cache as an earlier day left it: these families' service answers (at the `as_of`
    the service pins for each)."""
    cfg.paths.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cfg.paths.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cache = RightsCache.open(cfg.rights_db, cfg.rights_key, client=RightsClient(svc.url))
    try:
        for f in families:
            nir = f.insured.nir
            cache.record_service(nir, cache.client.family(nir))
    finally:
        cache.close()


def test_an_opposition_declared_at_the_service_blocks_that_phone_within_a_round(
        tmp_path: Path) -> None:
    """The patient declares the phone lost to the fund: within a round of the running daemon
    every transaction made with it shows `blocked`, a new presentation of it too, and no care
    sheet is made on it; the person's next phone is served."""
    world = World(tmp_path / "world")
    fam = world.family(15, beneficiaries=1)
    with RightsService() as svc:
        svc.add_family(fam)
        cfg = _config(tmp_path, cache={"service_url": svc.url, "opposition_every_s": 0.1})
        daemon = SubscribableDaemon()
        services = start_app(cfg, daemon)
        try:
            assert services.api is not None and services.rights is not None
            base, token = services.api.url, (tmp_path / "api-token").read_text().strip()
            lost = world.wallet(fam)
            tx = _show(world, daemon, lost, services.store)
            assert services.store.wait_rights(tx, 10)
            assert _people(base, token, tx) == [("fresh", ""), ("fresh", "")]
            credential_id = services.store._live[tx].credential_id
            _until(lambda: _ok_rounds(services, "opposition") >= 1)
            assert "comptoir_rights_opposition_seq 0" in _metrics(base)

            rounds = _ok_rounds(services, "opposition")
            svc.oppose(credential_id, int(time.time()))
            _until(lambda: services.rights.cache.opposition_seq == 1)
            # Reached by the round under way or the next one, not "eventually".
            assert _ok_rounds(services, "opposition") - rounds <= 2
            assert _people(base, token, tx) == [("blocked", "means_opposed")] * 2
            call(base, token, "POST", f"/v1/transactions/{tx}/beneficiary", {"person": 0})
            status, body = call(base, token, "POST", f"/v1/transactions/{tx}/dispensation",
                                _dispensation(0))
            assert status == 409 and body["error"] == "means_blocked", body
            # The lost phone shown again (the verifier's status list does not know yet).
            tx2 = _show(world, daemon, lost, services.store)
            assert services.store.wait_rights(tx2, 10)
            assert _people(base, token, tx2) == [("blocked", "means_opposed")] * 2
            call(base, token, "POST", f"/v1/transactions/{tx2}/beneficiary", {"person": 1})
            status, body = call(base, token, "POST", f"/v1/transactions/{tx2}/dispensation",
                                {**_dispensation(1), "tiers_payant": {"amo": False,
                                                                      "amc": False}})
            assert status == 409 and body["error"] == "means_blocked", body
            assert services.biller.sheet(tx) is None and services.biller.sheet(tx2) is None
            # The new phone of the same person: their rights are intact.
            tx3 = _present(world, daemon, fam, services.store)
            assert services.store.wait_rights(tx3, 10)
            assert _people(base, token, tx3) == [("fresh", ""), ("fresh", "")]
            text = _metrics(base)
            assert "comptoir_rights_opposition_seq 1" in text
            assert 'comptoir_rights_sync_last_success_timestamp_seconds{kind="opposition"}' in text
            assert "comptoir_rights_service_reachable 1" in text
            assert credential_id.hex() not in text
        finally:
            _stop_cleanly(services)


def test_a_family_changed_at_the_service_is_refreshed_without_being_presented(
        tmp_path: Path) -> None:
    """Families cached two days ago are asked again in the background (oldest first, bounded
    per round); one cached an hour ago is left alone. When the closed family then comes to the
    counter with the line down, the cache already knows."""
    world = World(tmp_path / "world")
    now = int(time.time())
    old, recent = world.family(16, beneficiaries=1), world.family(17, beneficiaries=0)
    others = [world.family(18 + i, beneficiaries=0) for i in range(3)]
    with RightsService() as svc:
        svc.add_family(old, as_of=now - 2 * 86400)
        svc.add_family(recent, as_of=now - 3600)
        for i, f in enumerate(others):
            svc.add_family(f, as_of=now - 3 * 86400 + i)
        cfg = _config(tmp_path, cache={"service_url": svc.url, "refresh_every_s": 0.1,
                                       "refresh_older_than_s": 86400,
                                       "refresh_max_families": 2})
        _prefill(cfg, svc, [old, recent, *others])
        # Since then, at the insurer: both families' rights closed, the others unchanged.
        svc.close_rights(old.insured.nir)
        svc.close_rights(recent.insured.nir, as_of=now - 3600)
        for f in others:
            svc.add_family(f)  # now answered as of the service's clock
        daemon = SubscribableDaemon()
        services = start_app(cfg, daemon)
        try:
            cache = services.rights.cache  # type: ignore[union-attr]

            def status(f: Any) -> Status:
                return cache.rights_for(insured_id(f.insured)).status

            _until(lambda: status(old) is Status.EXPIRED)
            # Oldest first, two a round: the three older families went first, two rounds.
            assert all(status(f) is Status.FRESH for f in others)
            _until(lambda: services.metrics.families_refreshed == 4
                   and _ok_rounds(services, "refresh") >= 4)
            # Then nothing older than a day is left: the recent family was never asked.
            assert status(recent) is Status.FRESH
            assert cache.rights_for(insured_id(recent.insured)).obtained_at == now - 3600
            assert services.metrics.families_refreshed == 4
            assert services.rights_sync is not None
            assert services.rights_sync.last_report is not None
            assert services.rights_sync.last_report.families == 0

            svc.stop()  # the line goes down; the closed family comes to the counter
            base, token = services.api.url, (tmp_path / "api-token").read_text().strip()
            tx = _present(world, daemon, old, services.store)
            assert services.store.wait_rights(tx, 10)
            assert _people(base, token, tx) == [("expired", "no_amo_rights")] * 2
            call(base, token, "POST", f"/v1/transactions/{tx}/beneficiary", {"person": 0})
            status_, body = call(base, token, "POST", f"/v1/transactions/{tx}/dispensation",
                                 _dispensation(0))
            assert status_ == 409 and body["error"] == "rights_closed", body
            text = _metrics(base)
            assert "comptoir_rights_families_refreshed_total 4" in text
            assert 'comptoir_rights_sync_rounds_total{kind="refresh",result="ok"}' in text
        finally:
            _stop_cleanly(services)


def test_service_down_no_crash_breaker_respected_logged_once_recovers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    world = World(tmp_path / "world")
    now = int(time.time())
    fam = world.family(22, beneficiaries=0)
    with RightsService() as svc:
        svc.add_family(fam, as_of=now - 2 * 86400)
        cfg = _config(tmp_path, cache={
            "service_url": svc.url, "opposition_every_s": 0.05, "refresh_every_s": 0.05,
            "refresh_older_than_s": 86400, "breaker_threshold": 3, "breaker_cool_down_s": 1,
            "service_attempts": 2, "service_timeout_ms": 300})
        _prefill(cfg, svc, [fam])
        svc.add_family(fam)  # answered as of now, once the service is back
        svc.outage = True
        before = svc.requests
        caplog.set_level(logging.DEBUG, logger="comptoir")
        services = start_app(cfg, daemon := SubscribableDaemon())
        try:
            assert services.api is not None
            base = services.api.url
            time.sleep(2.5)
            # 40+ rounds of each kind went by: without the breaker, 2 requests each. With it:
            # 3 failed attempts open it, then one trial after 1 s (failed: 2 s more), ...
            assert 3 <= svc.requests - before <= 6, svc.requests - before
            (task,) = [t for t in services.tasks if t.name == "rights sync"]
            assert task.health() == "running"
            assert "comptoir_rights_service_reachable 0" in _metrics(base)
            cache = services.rights.cache  # type: ignore[union-attr]
            who = insured_id(fam.insured)
            assert cache.rights_for(who).obtained_at == now - 2 * 86400  # the cache serves

            svc.outage = False
            _until(lambda: cache.rights_for(who).obtained_at > now - 60, timeout=20)
            _until(lambda: "comptoir_rights_service_reachable 1" in _metrics(base))
            assert cache.rights_for(who).status is Status.FRESH
            # The counter uses the same breaker: closed again, presentations are answered.
            tx = _present(world, daemon, fam, services.store)
            assert services.store.wait_rights(tx, 10)
            assert services.store.get(tx).rights_service == "answered"
        finally:
            _stop_cleanly(services)
    sync_logs = [r for r in caplog.records if r.name == "comptoir.rights"
                 and r.levelno >= logging.INFO and "background" in r.getMessage()]
    assert [(r.levelname, r.getMessage()) for r in sync_logs] == [
        ("WARNING", "background rights sync failed; next round as planned"),
        ("INFO", "rights service reachable again for the background sync")]
    assert sync_logs[0].result == "unavailable"  # type: ignore[attr-defined]


def test_without_a_service_no_sync_task(tmp_path: Path) -> None:
    services = start_app(_config(tmp_path), SubscribableDaemon())
    try:
        assert services.rights_sync is None
        assert [t.name for t in services.tasks] == ["transactions purge",
                                                      "billing lots by age"]
    finally:
        services.stop()


@pytest.mark.parametrize(("key", "value"), [
    ("opposition_every_s", 0),
    ("opposition_every_s", 0.01),
    ("opposition_every_s", 86401),
    ("opposition_every_s", "5m"),
    ("opposition_every_s", True),
    ("opposition_every_s", float("nan")),
    ("refresh_every_s", -1),
    ("refresh_every_s", float("inf")),
    ("refresh_older_than_s", -1),
    ("refresh_older_than_s", 3600.5),
    ("refresh_older_than_s", 8 * 86400),  # beyond offline_max_age_s (7 days)
    ("refresh_max_families", -1),
    ("refresh_max_families", 100_001),
])
def test_bad_sync_settings_name_the_key(tmp_path: Path, key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"^cache\.{key}: "):
        _config(tmp_path, cache={"service_url": "http://127.0.0.1:9", key: value})


def test_sync_settings_from_the_file(tmp_path: Path) -> None:
    c = _config(tmp_path, cache={"opposition_every_s": 60, "refresh_every_s": 0.5,
                                 "refresh_older_than_s": 0, "refresh_max_families": 0}).cache
    assert (c.opposition_every_s, c.refresh_every_s) == (60.0, 0.5)
    assert isinstance(c.opposition_every_s, float)
    assert (c.refresh_older_than_s, c.refresh_max_families) == (0, 0)
