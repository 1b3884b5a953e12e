"""The local API through real HTTP on 127.0.0.1 (ephemeral port), with transactions opened by
really verified presentations."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import SubscribableDaemon, read_events
from billing_fixtures import CIP, FINESS, PHARMACIST, PRESCRIBER, SYNTH
from tokens_fixtures import NOW, TODAY, World

from comptoir.api import ApiServer, EventFeed, load_or_create_token
from comptoir.api.auth import TokenFileError
from comptoir.api.server import ROUTES
from comptoir.billing import StorageFull
from comptoir.events import BoardInfo, BoardStatus, BoardUp, LinkError
from comptoir.metrics import Metrics
from comptoir.nfc_service import Presentation
from comptoir.opener import TransactionOpener
from comptoir.tokens.model import Refused
from comptoir.tokens.reasons import Reason
from comptoir.transactions import JournalBiller, TransactionStore

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


class Env:
    def __init__(self, tmp: Path) -> None:
        self.world = World(tmp / "world")
        self.biller = JournalBiller(tmp / "billing.db")
        self.store = TransactionStore(tmp / "tx.db", tmp / "tx.key", self.biller)
        self.metrics = Metrics(lambda: {p: s.state for p, s in self.status.items()})
        self.feed = EventFeed(self.metrics)
        self.opener = TransactionOpener(self.store, self.feed, self.metrics)
        self.status = {"/dev/comptoir-A": BoardStatus("/dev/comptoir-A", "up", BoardInfo(
            "a1b2", "reader-A", "0.1.0", ("nfc",), 512))}
        self.token = load_or_create_token(tmp / "run" / "api-token")
        self.api = ApiServer(self.token, self.store, self.feed, host="127.0.0.1", port=0,
                             boards=lambda: self.status, metrics=self.metrics).start()

    def close(self) -> None:
        self.api.stop()
        self.store.close()
        self.biller.close()

    def present(self, beneficiaries: int = 2, seed: int = 7) -> str:
        """A verified QR presentation through the feed: returns the new transaction id."""
        wallet = self.world.wallet(self.world.family(seed, beneficiaries=beneficiaries))
        result = self.world.qr(wallet.present_qr(now=NOW))
        before = set(self.store.ids())
        ev = Presentation("/dev/comptoir-A", "a1b2", 0x8001, "qr", result, time.monotonic())
        self.metrics.on_event(ev)  # both subscribe to the daemon in `comptoir run`
        self.opener.on_event(ev)
        (tx,) = set(self.store.ids()) - before
        return tx

    def call(self, method: str, path: str, body: Any = None, *, token: str | None = "ok",
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + (self.token if token == "ok" else token)
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        req = urllib.request.Request(self.api.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                raw, status, ctype = r.read(), r.status, r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            raw, status, ctype = e.read(), e.code, e.headers.get("Content-Type", "")
        return status, (json.loads(raw) if ctype.startswith("application/json") else raw.decode())


@pytest.fixture
def env(tmp_path: Path):
    e = Env(tmp_path)
    yield e
    e.close()


def dispensation(person: int, **changes: Any) -> dict[str, Any]:
    body = {"person": person, "finess": FINESS, "pharmacist_rpps": PHARMACIST,
            "prescriber_rpps": PRESCRIBER,
            "prescribed_on": str(TODAY - dt.timedelta(days=2)), "dispensed_on": str(TODAY),
            "tiers_payant": {"amo": True, "amc": False},
            "lines": [{"code": CIP, "quantity": 1, "unit_price": 1000, "base": 1000, "rate": 65}]}
    body.update(changes)
    return body


def test_token_file_is_0600_and_reused(tmp_path: Path) -> None:
    p = tmp_path / "t" / "api-token"
    token = load_or_create_token(p)
    assert p.stat().st_mode & 0o777 == 0o600 and len(token) >= 43
    assert load_or_create_token(p) == token
    p.chmod(0o644)
    with pytest.raises(TokenFileError, match="readable by others"):
        load_or_create_token(p)


def test_refuses_a_non_loopback_bind(env: Env) -> None:
    with pytest.raises(ValueError, match="loopback"):
        ApiServer("x" * 43, None, env.feed, host="0.0.0.0", port=0)


def test_auth(env: Env) -> None:
    tx = env.present()
    for token in (None, "wrong", env.token + "x", env.token[:-1]):
        status, body = env.call("GET", f"/v1/transactions/{tx}", token=token)
        assert status == 401 and body["error"] == "unauthorized" and "detail" in body
    assert env.call("GET", "/v1/boards", token=None)[0] == 401
    assert env.call("GET", "/v1/events", token=None)[0] == 401
    assert env.call("GET", "/v1/health", token=None) == (200, {"status": "ok",
                                                                "version": "0.1.0"})
    assert env.call("GET", "/v1/boards", headers={"Host": "evil.example:80"})[0] == 403


def test_full_flow_and_no_nir(env: Env) -> None:
    tx = env.present(beneficiaries=2)
    status, body = env.call("GET", f"/v1/transactions/{tx}")
    assert status == 200 and body["state"] == "awaiting_beneficiary" and body["chosen"] is None
    assert [p["person"] for p in body["people"]] == [0, 1, 2]
    nir = env.store._live[tx].insured.nir
    assert nir not in json.dumps(body) and body["people"][0]["nir_masked"].endswith(nir[-2:])
    status, body = env.call("POST", f"/v1/transactions/{tx}/beneficiary", {"person": 1})
    assert status == 200 and body["state"] == "ready" and body["chosen"] == 1
    status, body = env.call("POST", f"/v1/transactions/{tx}/dispensation", dispensation(1))
    assert status == 201, body
    assert body["state"] == "dispensed" and body["care_sheet"]["invoice_no"] == 1
    assert body["care_sheet"]["lot"] is None
    sheet = env.biller.sheet(tx)
    assert sheet is not None and sheet.beneficiary_rank == body["people"][1]["rank"]


def test_errors_change_nothing(env: Env) -> None:
    tx = env.present(beneficiaries=1)
    snap = lambda: env.store.db.execute("SELECT * FROM tx").fetchall()  # noqa: E731
    before = snap()
    status, body = env.call("POST", "/v1/transactions/" + "0" * 32 + "/beneficiary",
                            {"person": 0})
    assert status == 404 and body["error"] == "unknown_transaction"
    assert body["detail"] == "no such transaction"
    assert env.call("GET", "/v1/transactions/nope")[0] == 404
    assert env.call("GET", "/v1/nothing")[0] == 404
    assert env.call("DELETE", f"/v1/transactions/{tx}")[0] == 405
    for bad in ({"person": 2}, {"person": -1}, {"person": "0"}, {"person": True}):
        status, body = env.call("POST", f"/v1/transactions/{tx}/beneficiary", bad)
        assert status == 422 and body["error"] == "invalid_person", bad
    for bad_body in ({}, {"person": 0, "extra": 1}, [0], b"{not json"):
        status, body = env.call("POST", f"/v1/transactions/{tx}/beneficiary", bad_body)
        assert status == 422 and body["error"] in ("invalid_body", "invalid_json")
    status, body = env.call("POST", f"/v1/transactions/{tx}/dispensation", dispensation(0))
    assert status == 409 and body["error"] == "wrong_state"
    assert snap() == before
    assert env.call("POST", f"/v1/transactions/{tx}/beneficiary", {"person": 0})[0] == 200
    before = snap()
    status, body = env.call("POST", f"/v1/transactions/{tx}/beneficiary", {"person": 1})
    assert status == 409 and body["error"] == "wrong_state"
    status, body = env.call("POST", f"/v1/transactions/{tx}/dispensation", dispensation(1))
    assert status == 409 and body["error"] == "person_mismatch"
    status, body = env.call("POST", f"/v1/transactions/{tx}/dispensation",
                            dispensation(0, finess="12"))
    assert status == 422 and body["error"] == "invalid_dispensation" and "finess" in body["fields"]
    status, body = env.call("POST", f"/v1/transactions/{tx}/dispensation",
                            dispensation(0, dispensed_on="yesterday"))
    assert status == 422 and body["fields"] == ["dispensed_on"]
    assert snap() == before and env.biller.sheet(tx) is None


def test_refused_presentation_opens_nothing(env: Env) -> None:
    sub = env.feed.subscribe()
    env.opener.on_event(Presentation("/dev/comptoir-A", "a1b2", 1, "nfc",
                                     Refused(Reason.REPLAYED), 0.0))
    assert env.store.ids() == []
    _, kind, data = sub.queue.get(timeout=1)
    assert kind == "presentation" and data["verdict"] == "refused"
    assert data["reason"] == Reason.REPLAYED.value and "transaction" not in data


def test_event_stream_delivers(env: Env) -> None:
    got: list[dict[str, Any]] = []
    ready = threading.Event()
    t = threading.Thread(target=read_events, args=(env.api.port, env.token, 3, got, ready),
                         daemon=True)
    t.start()
    assert ready.wait(5)
    env.feed.on_event(BoardUp("/dev/comptoir-A", env.status["/dev/comptoir-A"].board))
    tx = env.present(beneficiaries=1)
    env.call("POST", f"/v1/transactions/{tx}/beneficiary", {"person": 1})
    t.join(5)
    assert [e["type"] for e in got] == ["board", "presentation", "transaction"]
    assert got[1]["transaction"] == tx and got[1]["verdict"] == "choose_beneficiary"
    assert got[2]["chosen"] == 1 and got[2]["action"] == "chosen"
    nir = env.store.get(tx).people[0].ref.insured_nir
    names = [p.family_name for p in env.store.get(tx).people]
    text = json.dumps(got, ensure_ascii=False)
    assert nir not in text and not any(n in text for n in names)


def test_boards_and_metrics(env: Env) -> None:
    env.present(beneficiaries=0)
    env.metrics.on_event(LinkError("/dev/comptoir-A", "crc", "bad crc"))
    status, body = env.call("GET", "/v1/boards")
    assert status == 200 and body["boards"][0]["state"] == "up"
    status, text = env.call("GET", "/metrics", token=None)
    assert status == 200
    assert 'comptoir_reads_total{channel="qr"} 1' in text
    assert 'comptoir_verdicts_total{channel="qr",verdict="accepted",reason=""} 1' in text
    assert 'comptoir_link_errors_total{port="/dev/comptoir-A",counter="crc"} 1' in text
    assert "comptoir_boards_up 1" in text
    assert 'comptoir_presentation_latency_seconds_bucket{channel="qr",le="+Inf"} 1' in text
    assert 'comptoir_transactions_total{action="opened"} 1' in text


def test_openapi_matches_the_server() -> None:
    doc = json.loads(OPENAPI.read_text())
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops
                  if m in ("get", "post", "put", "delete", "patch")}
    served = {(r.method, r.path) for r in ROUTES}
    assert documented == served


def test_start_app_from_config(tmp_path: Path) -> None:
    from comptoir.app import start_app
    from comptoir.config import from_dict

    cfg = from_dict({"paths": {"data_dir": "d", "keys_dir": "k"},
                     "api": {"port": 0, "token_file": "run/token"}}, tmp_path)
    daemon = SubscribableDaemon()
    services = start_app(cfg, daemon)
    try:
        # metrics, the transaction opener, the event feed
        assert len(daemon.subscribers) == 3 and services.api is not None
        assert (tmp_path / "run" / "token").stat().st_mode & 0o777 == 0o600
        with urllib.request.urlopen(services.api.url + "/v1/health", timeout=5) as r:
            assert r.status == 200
    finally:
        services.stop()


# -- a full disk ---------------------------------------------------------------------------------


def _limit_pages(db: Any, extra: int | None) -> None:
    """Let an SQLite database grow by `extra` pages at most (None: no limit): SQLITE_FULL,
    the error a full disk gives, without root to mount a small file system."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count={1_073_741_823 if extra is None else pages + extra}")


def _fill(j: Any) -> int:
    _limit_pages(j.db, 0)
    done = 0
    with contextlib.suppress(StorageFull):
        while True:
            j.record(SYNTH.dispensation(done))
            done += 1
    return done


def test_a_full_disk_is_a_clear_error_and_the_retry_bills_once(env: Env) -> None:
    tx = env.present(beneficiaries=0)  # nobody to choose: ready at once
    filled = env.biller._call(_fill)  # other sheets filled billing.db; it cannot grow
    status, body = env.call("POST", f"/v1/transactions/{tx}/dispensation", dispensation(0))
    assert status == 507 and body["error"] == "storage_full"
    assert "billing journal" in body["detail"] and tx in body["detail"]
    assert "free space" in body["detail"]
    status, view = env.call("GET", f"/v1/transactions/{tx}")
    assert view["state"] == "ready" and view["care_sheet"] is None  # nothing half done
    assert env.biller.sheet(tx) is None
    env.biller._call(lambda j: _limit_pages(j.db, None))  # room again
    status, view = env.call("POST", f"/v1/transactions/{tx}/dispensation", dispensation(0))
    assert status == 201 and view["state"] == "dispensed"
    status, again = env.call("POST", f"/v1/transactions/{tx}/dispensation", dispensation(0))
    assert status == 409 and again["error"] == "wrong_state"
    assert env.biller._call(lambda j: j.count_sheets()) == filled + 1
    # transactions.db cannot grow: a presentation is verified but opens nothing, and says so.
    _limit_pages(env.store.db, 0)
    for seed in range(20, 80):  # presentations fill it up
        before = env.store.ids()
        try:
            env.present(beneficiaries=0, seed=seed)
        except ValueError:  # no new transaction id
            break
    else:
        pytest.fail("transactions.db never filled up")
    assert env.store.ids() == before
    recent = [data for _, kind, data in env.feed._recent if kind == "presentation"]
    assert recent[-1]["verdict"] == "error" and recent[-1]["reason"] == "storage_full"
    assert "transaction" not in recent[-1]
    _limit_pages(env.store.db, None)
    assert env.present(beneficiaries=0) not in before
