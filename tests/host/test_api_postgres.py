"""The local API on stores kept in PostgreSQL (issue 17), through the real API socket: when
the shared database is unreachable (the back-office PC off, the LAN down), a request is
answered with a clear error (503 `storage_unavailable`), nothing acknowledged is lost, and the
same request sent again once the server is back does what it asked, once."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from billing_fixtures import FINESS, PHARMACIST
from pg_fixtures import PgServer, pg_server, pg_url  # noqa: F401 (fixtures)
from test_api import Env, dispensation
from tokens_fixtures import NOW, World

from comptoir.api import ApiServer, EventFeed, load_or_create_token
from comptoir.billing.journal_pg import open_journal
from comptoir.events import BoardInfo, BoardStatus
from comptoir.metrics import Metrics
from comptoir.nfc_service import Presentation
from comptoir.opener import TransactionOpener
from comptoir.screen import ScreenServer, Sessions, SignInLinks
from comptoir.screen.server import Pharmacy
from comptoir.transactions import JournalBiller
from comptoir.transactions.store_pg import open_store


class PgEnv(Env):
    """test_api's daemon stand-in, its billing journal and transactions on one PostgreSQL."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.world = World(tmp / "world")
        self.biller = JournalBiller(tmp / "unused", opener=lambda: open_journal(
            url, key=tmp / "keys" / "billing.key"))
        self.store = open_store(url, tmp / "keys" / "tx.key", self.biller)
        self.metrics = Metrics(lambda: {p: s.state for p, s in self.status.items()})
        self.feed = EventFeed(self.metrics)
        self.opener = TransactionOpener(self.store, self.feed, self.metrics)
        self.status = {"/dev/comptoir-A": BoardStatus("/dev/comptoir-A", "up", BoardInfo(
            "a1b2", "reader-A", "0.1.0", ("nfc",), 512))}
        self.token = load_or_create_token(tmp / "run" / "api-token")
        self.api = ApiServer(self.token, self.store, self.feed, host="127.0.0.1", port=0,
                             boards=lambda: self.status, metrics=self.metrics).start()
        self.screen = ScreenServer(
            self.store, self.feed, links=SignInLinks(tmp / "links", ttl=60),
            sessions=Sessions(ttl=3600), port=0, boards=lambda: self.status,
            pharmacy=Pharmacy(FINESS, PHARMACIST, "Europe/Paris", tmp)).start()

    def close(self) -> None:
        self.screen.stop()
        super().close()

    def screen_post(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        """A counter screen action, in a new session (one-time link, cookie, CSRF token)."""
        host = {"Host": f"127.0.0.1:{self.screen.port}"}

        def request(method: str, p: str, headers: dict[str, str], data: bytes | None = None
                    ) -> http.client.HTTPResponse:
            conn = http.client.HTTPConnection("127.0.0.1", self.screen.port, timeout=5)
            conn.request(method, p, body=data, headers={**host, **headers})
            return conn.getresponse()

        link = self.screen.sign_in_link().split(str(self.screen.port), 1)[1]
        sid = request("GET", link, {}).headers["Set-Cookie"].split(";", 1)[0]
        page = request("GET", "/", {"Cookie": sid}).read().decode()
        csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        r = request("POST", path, {"Cookie": sid, "X-CSRF-Token": csrf,
                                   "Content-Type": "application/json"},
                    json.dumps(body).encode())
        return r.status, json.loads(r.read())


@pytest.fixture
def env(tmp_path: Path, pg_url: str, pg_server: PgServer) -> Iterator[PgEnv]:  # noqa: F811
    e = PgEnv(tmp_path, pg_url)
    yield e
    e.close()


def test_an_unreachable_database_is_a_503_and_nothing_acknowledged_is_lost(
        env: PgEnv, pg_server: PgServer) -> None:  # noqa: F811
    ready = env.present(beneficiaries=0)  # acknowledged before the server goes away
    family = env.present(beneficiaries=2, seed=8)
    pg_server.stop()
    try:
        for method, path, body in (
                ("GET", f"/v1/transactions/{ready}", None),
                ("POST", f"/v1/transactions/{ready}/dispensation", dispensation(0)),
                ("POST", f"/v1/transactions/{family}/beneficiary", {"person": 1})):
            for _ in range(2):  # the lost connection, then a new one refused
                status, err = env.call(method, path, body)
                assert status == 503, (method, path, err)
                assert err["error"] == "storage_unavailable"
                assert "shared database" in err["detail"]
                assert "again" in err["detail"]
        # The counter screen says it, in French.
        status, err = env.screen_post(f"/ecran/transactions/{family}/beneficiaire",
                                      {"person": 1})
        assert status == 503 and err["error"] == "storage_unavailable"
        assert err["message"].startswith("Base partagée injoignable")
        # A presentation verified meanwhile opens nothing and says why.
        wallet = env.world.wallet(env.world.family(9, beneficiaries=0))
        env.opener.on_event(Presentation("/dev/comptoir-A", "a1b2", 0x8002, "qr",
                                         env.world.qr(wallet.present_qr(now=NOW)),
                                         time.monotonic()))
        recent = [data for _, kind, data in env.feed._recent if kind == "presentation"]
        assert recent[-1]["verdict"] == "error"
        assert recent[-1]["reason"] == "storage_unavailable"
    finally:
        pg_server.start()
    # Back: what was acknowledged is there, the same requests do what they asked, once.
    status, view = env.call("GET", f"/v1/transactions/{ready}")
    if status == 503:  # the statement that found its connection lost again
        status, view = env.call("GET", f"/v1/transactions/{ready}")
    assert status == 200 and view["state"] == "ready" and view["care_sheet"] is None
    status, view = env.call("POST", f"/v1/transactions/{ready}/dispensation", dispensation(0))
    if status == 503:
        status, view = env.call("POST", f"/v1/transactions/{ready}/dispensation",
                                dispensation(0))
    assert status == 201 and view["state"] == "dispensed"
    assert view["care_sheet"]["invoice_no"] == 1
    status, again = env.call("POST", f"/v1/transactions/{ready}/dispensation", dispensation(0))
    assert status == 409 and again["error"] == "wrong_state"
    status, view = env.call("POST", f"/v1/transactions/{family}/beneficiary", {"person": 1})
    assert status == 200 and view["state"] == "ready" and view["chosen"] == 1
    assert env.biller._call(lambda j: j.count_sheets()) == 1
    assert sorted(env.store.ids()) == sorted([ready, family])  # the third opened nothing


def test_a_verified_presentation_is_shown_accepted_only_once_its_transaction_is_stored(
        env: PgEnv, pg_server: PgServer) -> None:  # noqa: F811
    """The opener's `admit` (called before the verdict is sent) opens the transaction: with the
    server away, the board is shown `error`, not "accepted" with nothing behind it (the
    multi-counter restart test found boards told accepted, no transaction opened)."""
    from comptoir.tokens.model import Refused, Verified
    from comptoir.tokens.reasons import Reason

    def verified(seed: int) -> Verified:
        wallet = env.world.wallet(env.world.family(seed, beneficiaries=0))
        result = env.world.qr(wallet.present_qr(now=NOW))
        assert isinstance(result, Verified)
        return result

    ok = verified(21)
    assert env.opener.admit("/dev/comptoir-A", "a1b2", 0x8001, "qr", ok) is ok
    (tx,) = env.store.ids()  # opened before the verdict
    env.opener.on_event(Presentation("/dev/comptoir-A", "a1b2", 0x8001, "qr", ok, 0.0))
    assert env.store.ids() == [tx]  # its event opens no second one
    recent = [data for _, kind, data in env.feed._recent if kind == "presentation"]
    assert recent[-1]["verdict"] == "accepted" and recent[-1]["transaction"] == tx
    away = verified(22)
    pg_server.stop()
    try:
        shown = env.opener.admit("/dev/comptoir-A", "a1b2", 0x8002, "qr", away)
        assert isinstance(shown, Refused) and shown.reason is Reason.STATE_UNAVAILABLE
        env.opener.on_event(Presentation("/dev/comptoir-A", "a1b2", 0x8002, "qr", away, 0.0))
    finally:
        pg_server.start()
    recent = [data for _, kind, data in env.feed._recent if kind == "presentation"]
    assert recent[-1]["verdict"] == "error" and recent[-1]["reason"] == "storage_unavailable"
    for _ in range(2):  # the first statement may find its connection lost
        try:
            assert env.store.ids() == [tx]
            break
        except Exception:
            time.sleep(0.2)
    else:
        raise AssertionError("the store did not come back")
