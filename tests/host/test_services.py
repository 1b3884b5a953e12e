"""`start_services` as `comptoir run` calls it, from a config: the rights cache and the rights
service client wired to the transactions, and lots closed by age by a periodic task that stops
with the services. Real SQLite, real HTTP, the real simulated rights service."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import SubscribableDaemon, call
from billing_fixtures import CIP, FINESS, PHARMACIST, PRESCRIBER
from tokens_fixtures import NOW, TODAY, World

from comptoir.api.service import lots_every, start_services
from comptoir.config import ConfigError, from_dict
from comptoir.nfc_service import Presentation
from comptoir_tools.rights_service import RightsService


def _config(tmp: Path, **sections: dict[str, Any]) -> Any:
    data: dict[str, Any] = {"paths": {"data_dir": "data", "keys_dir": "keys"},
                            "api": {"port": 0, "token_file": "api-token"}}
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    return from_dict(data, tmp)


def _present(world: World, daemon: SubscribableDaemon, fam: Any, store: Any) -> str:
    wallet = world.wallet(fam)
    result = world.qr(wallet.present_qr(now=NOW))
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
        services = start_services(cfg, daemon)
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
        assert not any(t.is_alive() for t in services.threads)
        assert not [t for t in threading.enumerate() if t.name in (
            "billing lots by age", "transactions purge", "rights refresh")]


def test_lots_check_interval() -> None:
    assert lots_every(_config(Path("."))) == 60.0
    assert lots_every(_config(Path("."), billing={"lot_max_age_s": 2})) == 0.5
    assert lots_every(_config(Path("."), billing={"lot_max_age_s": 120})) == 30.0


def test_without_a_service_the_cache_alone_answers(tmp_path: Path) -> None:
    world = World(tmp_path / "world")
    daemon = SubscribableDaemon()
    services = start_services(_config(tmp_path), daemon)
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
    services = start_services(_config(tmp_path, cache={"enabled": False}), daemon)
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
