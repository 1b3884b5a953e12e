"""The counter screen's server over real sockets, in process, with transactions opened by really
verified presentations: sign-in by a one-time link, the session cookie and the CSRF token, the
Host rule, the security headers, session expiry on the daemon's clock, and the same care sheet
as the API."""

from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from api_fixtures import call
from billing_fixtures import FINESS, PHARMACIST, PRESCRIBER
from tokens_fixtures import NOW, World

from comptoir import clock
from comptoir.api import ApiServer, EventFeed, load_or_create_token
from comptoir.events import BoardInfo, BoardStatus, BoardUp, PortLost
from comptoir.nfc_service import Presentation
from comptoir.opener import TransactionOpener
from comptoir.screen import ScreenServer, Sessions, SignInLinks
from comptoir.screen.catalogue import CATALOGUE
from comptoir.screen.server import Pharmacy
from comptoir.transactions import JournalBiller, TransactionStore

PORT = "/dev/comptoir-A"


class Env:
    def __init__(self, tmp: Path) -> None:
        self.world = World(tmp / "world")
        self.biller = JournalBiller(tmp / "billing.db")
        self.store = TransactionStore(tmp / "tx.db", tmp / "tx.key", self.biller)
        self.feed = EventFeed()
        self.opener = TransactionOpener(self.store, self.feed)
        self.status = {PORT: BoardStatus(PORT, "up", BoardInfo("a1b2", "reader-A", "0.1.0",
                                                               ("nfc",), 512))}
        self.token = load_or_create_token(tmp / "api-token")
        self.api = ApiServer(self.token, self.store, self.feed, port=0,
                             boards=lambda: self.status).start()
        self.screen = ScreenServer(
            self.store, self.feed, links=SignInLinks(tmp / "links", ttl=60),
            sessions=Sessions(ttl=3600), port=0, boards=lambda: self.status,
            pharmacy=Pharmacy(FINESS, PHARMACIST, "Europe/Paris", tmp)).start()

    def close(self) -> None:
        self.screen.stop()
        self.api.stop()
        self.store.close()
        self.biller.close()

    def present(self, beneficiaries: int = 2, seed: int = 7) -> str:
        wallet = self.world.wallet(self.world.family(seed, beneficiaries=beneficiaries))
        result = self.world.qr(wallet.present_qr(now=NOW))
        before = set(self.store.ids())
        self.opener.on_event(Presentation(PORT, "a1b2", 0x8001, "qr", result,
                                          time.monotonic()))
        (tx,) = set(self.store.ids()) - before
        return tx

    def request(self, method: str, path: str, body: Any = None, *,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.screen.port, timeout=5)
        h = {"Host": f"127.0.0.1:{self.screen.port}", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        conn.close()
        return out

    def sign_in(self) -> tuple[str, str]:
        """(cookie header, CSRF token) of a new session, through the one-time link."""
        link = self.screen.sign_in_link()
        status, headers, _ = self.request("GET", link.split(str(self.screen.port), 1)[1])
        assert status == 303 and headers["location"] == "/"
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        sid = cookie.split(";", 1)[0]
        status, _, page = self.request("GET", "/", headers={"Cookie": sid})
        assert status == 200
        csrf = page.decode().split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        return sid, csrf


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.close()


def test_one_time_link_cookie_and_csrf(env: Env) -> None:
    link = env.screen.sign_in_link()
    assert env.token not in link
    path = link.split(str(env.screen.port), 1)[1]
    cookie, csrf = env.sign_in()
    # Without a session: the page, its reads and its actions are refused.
    for method, p in (("GET", "/"), ("GET", "/ecran/etat"), ("GET", "/ecran/flux"),
                      ("GET", "/ecran/journee")):
        assert env.request(method, p)[0] == 401, p
    tx = env.present()
    body = {"person": 1}
    assert env.request("POST", f"/ecran/transactions/{tx}/beneficiaire", body,
                       headers={"X-CSRF-Token": csrf})[0] == 401
    # With the cookie but without (or with a wrong) CSRF token: refused, nothing chosen.
    assert env.request("POST", f"/ecran/transactions/{tx}/beneficiaire", body,
                       headers={"Cookie": cookie})[0] == 403
    assert env.request("POST", f"/ecran/transactions/{tx}/beneficiaire", body,
                       headers={"Cookie": cookie, "X-CSRF-Token": csrf[:-1] + "A"
                                if csrf[-1] != "A" else csrf[:-1] + "B"})[0] == 403
    assert env.store.get(tx).chosen is None
    # The API token is no key to the screen, and the screen's cookie none to the API.
    assert env.request("GET", "/ecran/etat",
                       headers={"Authorization": f"Bearer {env.token}"})[0] == 401
    assert call(env.api.url, "x" * 43, "GET", f"/v1/transactions/{tx}")[0] == 401
    status, _, raw = env.request("POST", f"/ecran/transactions/{tx}/beneficiaire", body,
                                 headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert status == 200 and json.loads(raw)["chosen"] == 1
    # Signing out ends the session at once (and clears the cookie).
    status, headers, _ = env.request("POST", "/ecran/deconnexion", {},
                                     headers={"Cookie": cookie, "X-CSRF-Token": csrf})
    assert status == 200 and "Max-Age=0" in headers["set-cookie"]
    assert env.request("GET", "/ecran/etat", headers={"Cookie": cookie})[0] == 401
    # A link works once.
    assert env.request("GET", path)[0] == 303
    assert env.request("GET", path)[0] == 403
    assert env.request("GET", "/connexion?jeton=" + "A" * 43)[0] == 403
    assert env.request("GET", "/connexion?" + "&".join(["jeton=x"] * 9))[0] == 403
    assert env.request("GET", "/connexion")[0] == 403


def test_headers_host_and_static(env: Env) -> None:
    cookie, _ = env.sign_in()
    _, headers, page = env.request("GET", "/", headers={"Cookie": cookie})
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert b"<script>" not in page and b" on" + b"click=" not in page
    assert headers["cache-control"] == "no-store" and headers["x-frame-options"] == "DENY"
    assert env.request("GET", "/static/screen.js")[0] == 200
    assert env.request("GET", "/static/../cli.py")[0] == 404
    # DNS rebinding: a foreign Host is refused before anything else.
    assert env.request("GET", "/", headers={"Cookie": cookie, "Host": "evil.test"})[0] == 403
    assert env.request("DELETE", "/")[0] in (403, 405, 501)


def test_session_expires_on_the_daemons_clock(env: Env) -> None:
    with clock.use(clock.ManualClock(time.time())) as c:
        cookie, _ = env.sign_in()
        assert env.request("GET", "/ecran/etat", headers={"Cookie": cookie})[0] == 200
        c.advance(3599)
        assert env.request("GET", "/ecran/etat", headers={"Cookie": cookie})[0] == 200
        c.advance(2)
        assert env.request("GET", "/ecran/etat", headers={"Cookie": cookie})[0] == 401
        # A link older than its lifetime does not sign in.
        link = env.screen.sign_in_link().split(str(env.screen.port), 1)[1]
        c.advance(61)
        assert env.request("GET", link)[0] == 403


def test_dispensation_gives_the_care_sheet_the_api_shows(env: Env) -> None:
    cookie, csrf = env.sign_in()
    h = {"Cookie": cookie, "X-CSRF-Token": csrf}
    tx = env.present(beneficiaries=1, seed=11)
    status, _, raw = env.request("GET", f"/ecran/transactions/{tx}", headers=h)
    view = json.loads(raw)
    assert status == 200 and view["amo"]["regime"] and len(view["people"]) == 2
    assert all("*" in p["nir_masked"] for p in view["people"])
    assert env.request("POST", f"/ecran/transactions/{tx}/beneficiaire", {"person": 1},
                       headers=h)[0] == 200
    bad = {"person": 1, "lines": [{"cip13": "3400930000000", "quantity": 1}],
           "prescriber_rpps": PRESCRIBER}
    status, _, raw = env.request("POST", f"/ecran/transactions/{tx}/dispensation", bad, headers=h)
    assert status == 422 and json.loads(raw)["field"] == "lines[0].cip13"
    good = {"person": 1, "prescriber_rpps": PRESCRIBER, "tiers_payant": {"amo": True},
            "lines": [{"cip13": CATALOGUE[1].cip13, "quantity": 2},
                      {"cip13": CATALOGUE[0].cip13, "quantity": 1}]}
    status, _, raw = env.request("POST", f"/ecran/transactions/{tx}/dispensation", good,
                                 headers=h)
    sheet = json.loads(raw)["care_sheet"]
    assert status == 201, raw
    assert sheet["total"] == 2 * CATALOGUE[1].unit_price + CATALOGUE[0].unit_price
    assert sheet["amo"] + sheet["amc"] + sheet["patient"] == sheet["total"]
    status, api_view = call(env.api.url, env.token, "GET", f"/v1/transactions/{tx}")
    assert api_view["care_sheet"] == sheet
    # Twice: the store refuses, in French.
    status, _, raw = env.request("POST", f"/ecran/transactions/{tx}/dispensation", good,
                                 headers=h)
    assert status == 409 and json.loads(raw)["error"] == "wrong_state"
    status, _, raw = env.request("GET", "/ecran/journee", headers=h)
    day = json.loads(raw)
    assert day["transactions"]["dispensed"] == 1
    assert day["open_lots"][0]["sheets"] == 1


def test_two_counters_are_kept_apart(env: Env) -> None:
    other = "/dev/comptoir-B"
    env.status[other] = BoardStatus(other, "up", BoardInfo("b2c3", "reader-B", "0.1.0",
                                                          ("nfc",), 512))
    cookie, _ = env.sign_in()
    tx = env.present()
    env.feed.on_event(PortLost(other, "unplugged"))
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        raw = env.request("GET", "/ecran/etat", headers={"Cookie": cookie})[2]
        a, b = json.loads(raw)["counters"]
        if a["transaction"] == tx and b["link"] == "absent":
            break
        time.sleep(0.02)
    assert (a["port"], a["link"], a["transaction"]) == (PORT, "up", tx)
    assert (b["port"], b["link"], b["transaction"], b["presentation"]) == (
        other, "absent", None, None)


def test_counters_follow_the_feed(env: Env) -> None:
    cookie, _ = env.sign_in()
    env.feed.on_event(PortLost(PORT, "unplugged"))
    env.status[PORT].state = "absent"
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        raw = env.request("GET", "/ecran/etat", headers={"Cookie": cookie})[2]
        (counter,) = json.loads(raw)["counters"]
        if counter["link"] == "absent":
            break
        time.sleep(0.02)
    assert counter["link"] == "absent"
    day = json.loads(env.request("GET", "/ecran/journee", headers={"Cookie": cookie})[2])
    assert [a["code"] for a in day["alerts"]] == ["board_down"]
    env.feed.on_event(BoardUp(PORT, BoardInfo("a1b2", "reader-A", "0.1.0", ("nfc",), 512)))
    tx = env.present()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        (counter,) = json.loads(env.request("GET", "/ecran/etat",
                                            headers={"Cookie": cookie})[2])["counters"]
        if counter["transaction"] == tx:
            break
        time.sleep(0.02)
    assert counter["link"] == "up" and counter["transaction"] == tx
    assert counter["presentation"]["verdict"] == "choose_beneficiary"


def test_a_post_body_never_spills_into_the_next_request(env: Env) -> None:
    """On one keep-alive connection (as a browser does): a cancel whose body the handler does
    not need, a refused POST, then a GET: each is answered as itself."""
    cookie, csrf = env.sign_in()
    tx = env.present()
    conn = http.client.HTTPConnection("127.0.0.1", env.screen.port, timeout=5)
    h = {"Host": f"127.0.0.1:{env.screen.port}", "Cookie": cookie,
         "Content-Type": "application/json"}
    for path, headers, want in ((f"/ecran/transactions/{tx}/annulation", {}, 403),
                                (f"/ecran/transactions/{tx}/annulation",
                                 {"X-CSRF-Token": csrf}, 200),
                                (f"/ecran/transactions/{tx}/annulation",
                                 {"X-CSRF-Token": csrf}, 409)):
        conn.request("POST", path, body=b'{"pad": "' + b"x" * 200 + b'"}',
                     headers={**h, **headers})
        r = conn.getresponse()
        r.read()
        assert r.status == want, path
        conn.request("GET", f"/ecran/transactions/{tx}", headers=h)
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["id"] == tx
    conn.close()


def test_a_body_that_stops_coming_is_answered_408_and_nothing_is_done(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the API (docs/api.md): a POST whose body stops coming gets 408 `timeout` once the
    connection's idle timeout passes, and the transaction is left as it was."""
    import socket

    from comptoir.screen import plumbing

    monkeypatch.setattr(plumbing.ScreenHandlerBase, "timeout", 0.3)
    cookie, csrf = env.sign_in()
    tx = env.present()
    head = (f"POST /ecran/transactions/{tx}/annulation HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{env.screen.port}\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n"
            "Content-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"pad\"")
    with socket.create_connection(("127.0.0.1", env.screen.port), timeout=5) as s:
        s.sendall(head.encode())
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408 "), answer
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"] == "timeout"
    status, _, raw = env.request("GET", f"/ecran/transactions/{tx}", headers={"Cookie": cookie})
    assert status == 200 and json.loads(raw)["state"] == "awaiting_beneficiary"


def test_comptoir_screen_prints_a_link_the_daemon_redeems_once(tmp_path: Path, capsys) -> None:
    from comptoir.cli import main
    from comptoir.config import load
    from comptoir.screen.service import links_dir

    cfg_path = tmp_path / "comptoir.toml"
    cfg_path.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
                        f'keys_dir = "{tmp_path / "keys"}"\n[screen]\nport = 8799\n')
    assert main(["screen", "--config", str(cfg_path)]) == 0
    link = capsys.readouterr().out.strip().splitlines()[-1]
    assert link.startswith("http://127.0.0.1:8799/connexion?jeton=")
    links = SignInLinks(links_dir(load(cfg_path)))  # what the daemon's screen reads
    secret = link.rsplit("=", 1)[1]
    assert links.redeem(secret) and not links.redeem(secret)
    cfg_path.write_text(cfg_path.read_text().replace("port = 8799", "enabled = false"))
    assert main(["screen", "--config", str(cfg_path)]) == 2


def test_connections_are_capped(env: Env) -> None:
    import socket

    from comptoir.screen.server import MAX_CONNECTIONS

    held = [socket.create_connection(("127.0.0.1", env.screen.port), timeout=5)
            for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # every one accepted, each handler waiting for its request
        extra = socket.create_connection(("127.0.0.1", env.screen.port), timeout=5)
        assert extra.recv(200).startswith(b"HTTP/1.1 503 ")
        extra.close()
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the handlers see their clients gone
        try:
            if env.request("GET", "/static/screen.css")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.05)
    assert env.request("GET", "/static/screen.css")[0] == 200


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                    max_size=80),
       cookie=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                      max_size=120),
       method=st.sampled_from(["GET", "POST"]))
def test_any_path_and_cookie_get_an_answer_never_a_failure(env: Env, path: str, cookie: str,
                                                           method: str) -> None:
    status, headers, _ = env.request(method, "/" + path.lstrip("/"),
                                     None if method == "GET" else {"x": 1},
                                     headers={"Cookie": cookie})
    assert status in (200, 303, 400, 401, 403, 404, 405, 415, 422), (path, status)
    assert "content-security-policy" in headers


def test_an_open_transaction_is_back_on_its_counter_after_a_restart(env: Env,
                                                                   tmp_path: Path) -> None:
    tx = env.present()
    done = env.present(beneficiaries=0, seed=12)  # later, but cancelled: not shown again
    env.store.cancel(done)
    env.screen.stop()
    env.screen = ScreenServer(env.store, env.feed, links=SignInLinks(tmp_path / "links2"),
                              port=0, boards=lambda: env.status).start()
    cookie, _ = env.sign_in()
    (counter,) = json.loads(env.request("GET", "/ecran/etat",
                                        headers={"Cookie": cookie})[2])["counters"]
    assert counter["transaction"] == tx and counter["tx_state"] == "awaiting_beneficiary"
    assert counter["presentation"]["verdict"] == "choose_beneficiary"


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(alphabet=st.sampled_from("jeton=&;%+Aa0_-.~?/#"), max_size=120))
def test_no_sign_in_query_but_an_issued_link_opens_a_session(env: Env, query: str) -> None:
    status, headers, _ = env.request("GET", "/connexion?" + query)
    assert status == 403 and "set-cookie" not in headers
