"""The counter screen's HTTP server: loopback only, the API's Host rule, a session cookie and a
CSRF token instead of the API token, a strict Content-Security-Policy, static files from the
package. Routes and serialises only: every action is the transaction store's and the event
feed's, as in the API (comptoir.api.server); the plumbing both share is in comptoir.http."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import queue
import re
import socket
import sys
import threading
import urllib.parse
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from comptoir import clock
from comptoir.events import BoardStatus
from comptoir.http.connections import CappedHTTPServer
from comptoir.http.errors import status_of
from comptoir.http.feed import EventFeed
from comptoir.http.serving import HttpServing
from comptoir.transactions import JournalBiller, TransactionError, TransactionStore

from . import cookies, forms, views
from .counters import Counters
from .plumbing import Refused, ScreenHandlerBase
from .sessions import Sessions, SignInLinks

log = logging.getLogger("comptoir.screen")

KEEPALIVE_S = 10.0
MAX_CONNECTIONS = 32
RECOVER_LAST = 200  # transactions looked at for open ones when the screen starts
STATIC = {"screen.js": "text/javascript; charset=utf-8", "screen.css": "text/css; charset=utf-8"}
_TX = r"(?P<tx>[0-9a-f]{32})"
_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (m, re.compile("^" + p + "$"), h) for m, p, h in (
        ("GET", r"/", "page"),
        ("GET", r"/connexion", "sign_in"),
        ("GET", r"/static/(?P<name>[a-z.]+)", "static"),
        ("GET", r"/ecran/etat", "state"),
        ("GET", r"/ecran/flux", "stream"),
        ("GET", r"/ecran/journee", "day"),
        ("GET", r"/ecran/transactions/" + _TX, "transaction"),
        ("POST", r"/ecran/transactions/" + _TX + r"/beneficiaire", "choose"),
        ("POST", r"/ecran/transactions/" + _TX + r"/dispensation", "dispense"),
        ("POST", r"/ecran/transactions/" + _TX + r"/annulation", "cancel"),
        ("POST", r"/ecran/deconnexion", "sign_out"),
    ))
_PUBLIC = {"sign_in", "static"}


@dataclass
class Pharmacy:
    """Who the screen's care sheets are made by (comptoir.toml [screen]) and the local day."""

    finess: str = ""
    pharmacist_rpps: str = ""
    timezone: str = "Europe/Paris"
    data_dir: Path = field(default_factory=Path)

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(clock.now(), zoneinfo.ZoneInfo(self.timezone)).date()


class _Server(CappedHTTPServer):
    request_queue_size = 64
    refusal_logger = log
    refusal_message = "counter screen: connection refused, too many open"
    max_connections = MAX_CONNECTIONS  # a page holds its event stream and one or two more
    screen: ScreenServer

    def refusal_body(self) -> bytes:
        return b'{"error": "too_many_connections", "message": "Trop de connexions"}'

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A page closed or reloaded mid-request (its event stream, a keep-alive connection):
        # nothing to report. Anything else goes to the log, not to standard error.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        log.exception("counter screen: connection failed")


class ScreenServer:
    def __init__(
        self,
        store: TransactionStore,
        feed: EventFeed,
        *,
        links: SignInLinks,
        sessions: Sessions | None = None,
        pharmacy: Pharmacy | None = None,
        host: str = "127.0.0.1",
        port: int = 8766,
        boards: Callable[[], Mapping[str, BoardStatus]] = dict,
        trust: Callable[[], dict[str, Any]] | None = None,
        rights_reachable: Callable[[], bool | None] = lambda: None,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"screen host {host} is not a loopback address")
        self.store = store
        self.feed = feed
        self.links = links
        self.sessions = sessions or Sessions()
        self.pharmacy = pharmacy or Pharmacy()
        self.boards = boards
        self.trust = trust
        self.rights_reachable = rights_reachable
        self.counters = Counters(feed, boards, port_of=lambda tx: store.get(tx).port)
        server_cls = type("Server", (_Server,), {
            "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET})
        self.httpd: _Server = server_cls((host, port), _Handler)
        self.httpd.screen = self
        self.host = host
        self.port = self.httpd.server_address[1]
        self._streams: set[Any] = set()
        self._streams_lock = threading.Lock()
        self.serving = HttpServing("screen", self.httpd)

    @property
    def url(self) -> str:
        return f"http://{'[' + self.host + ']' if ':' in self.host else self.host}:{self.port}"

    def sign_in_link(self) -> str:
        """A one-time link (what `comptoir screen` prints)."""
        return link_for(self.url, self.links.issue())

    def start(self) -> ScreenServer:
        self.counters.start(self._open_now())
        self.serving.start()
        log.info("counter screen listening", extra={"url": self.url})
        return self

    def _open_now(self) -> list[Any]:
        """The transactions open at start (after a restart), among the most recent ones."""
        counts = self.store.counts()
        if not counts.get("awaiting_beneficiary") and not counts.get("ready"):
            return []
        found = []
        for tx_id in self.store.ids()[-RECOVER_LAST:]:
            try:
                tx = self.store.get(tx_id)
            except TransactionError:
                continue
            if str(tx.state) in ("awaiting_beneficiary", "ready"):
                found.append(tx)
        return found

    def stop(self) -> None:
        self.counters.stop()
        self.serving.stop()


def link_for(base_url: str, secret: str) -> str:
    return f"{base_url}/connexion?jeton={secret}"


# French messages for the transaction store's refusals (the codes of docs/api.md).
MESSAGES = {
    "unknown_transaction": "Transaction inconnue",
    "wrong_state": "Action impossible dans l'état actuel de la transaction",
    "person_mismatch": "Ce n'est pas la personne choisie pour cette transaction",
    "invalid_person": "Personne inconnue dans cette transaction",
    "invalid_dispensation": "Dispensation refusée par la facturation",
    "rights_closed": "Droits AMO fermés : aucune feuille de soins possible",
    "means_blocked": "Téléphone en opposition ou désactivé : aucune feuille de soins",
    "rights_unconfirmed": "Droits non confirmés : pas de tiers payant, le patient règle",
    "data_unavailable": "Données de la transaction effacées (durée de conservation)",
    "storage_full": "Disque plein : rien n'a été enregistré ; libérez de la place puis "
                    "recommencez",
    "storage_unavailable": "Base partagée injoignable : rien n'a été enregistré ; "
                           "recommencez quand elle est revenue",
}


class _Handler(ScreenHandlerBase):
    server: _Server

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # --- plumbing --------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        screen = self.server.screen
        url = urllib.parse.urlsplit(self.path)
        try:
            self._check_host(screen.host)
            # A POST's body is read first, whatever comes next: one left unread would be taken
            # for the start of the next request on this keep-alive connection.
            self._raw = self._read_body() if method == "POST" else b""
            for m, pattern, handler in _ROUTES:
                match = pattern.match(url.path)
                if match is None:
                    continue
                if m != method:
                    raise Refused(405, "method_not_allowed", "Méthode non permise")
                session = None
                if handler not in _PUBLIC:
                    session = self._session(screen.sessions)
                    if method == "POST" and not screen.sessions.csrf_ok(
                            session, self.headers.get("X-CSRF-Token")):
                        raise Refused(403, "csrf", "Jeton anti-falsification absent ou faux")
                getattr(self, "h_" + handler)(screen, session, url.query, **match.groupdict())
                return
            raise Refused(404, "not_found", "Page inconnue")
        except (Refused, forms.FormError, TransactionError) as e:
            self._refusal(e)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.exception("screen request failed")
            self.close_connection = True
            self._json(500, {"error": "internal", "message": "Erreur interne (voir le journal)"})

    def _refusal(self, e: Exception) -> None:
        try:
            raise e
        except Refused as e:
            self._json(e.status, {"error": e.code, "message": e.message})
        except forms.FormError as e:
            self._json(422, {"error": "invalid_form", "field": e.field, "message": str(e)})
        except TransactionError as e:
            self._json(status_of(e), {"error": e.code, "message": MESSAGES.get(e.code, e.code),
                                  "detail": str(e)})

    # --- pages -----------------------------------------------------------------------------

    def h_sign_in(self, screen: ScreenServer, _s: Any, query: str) -> None:
        try:
            values = urllib.parse.parse_qs(query, max_num_fields=4).get("jeton", [])
        except ValueError:  # more fields than a link has
            values = []
        if len(values) != 1 or not screen.links.redeem(values[0]):
            page = _static("signin.html").replace(b"{{message}}", "Lien de connexion invalide, "
                                                  "déjà utilisé ou expiré.".encode())
            self._headers(403, "text/html; charset=utf-8", len(page))
            self.wfile.write(page)
            return
        s = screen.sessions.open()
        log.info("counter screen: signed in")
        cookie = cookies.set_session(s.sid, int(screen.sessions.ttl))
        self._headers(303, "text/plain; charset=utf-8", 0,
                      (("Location", "/"), ("Set-Cookie", cookie)))

    def h_page(self, screen: ScreenServer, s: Any, _q: str) -> None:
        page = _static("index.html").replace(b"{{csrf}}", s.csrf.encode())
        self._headers(200, "text/html; charset=utf-8", len(page))
        self.wfile.write(page)

    def h_static(self, screen: ScreenServer, _s: Any, _q: str, name: str) -> None:
        if name not in STATIC:
            raise Refused(404, "not_found", "Fichier inconnu")
        data = _static(name)
        self._headers(200, STATIC[name], len(data))
        self.wfile.write(data)

    def h_sign_out(self, screen: ScreenServer, s: Any, _q: str) -> None:
        screen.sessions.close(s.sid)
        data = b'{"signed_out": true}'
        self._headers(200, "application/json; charset=utf-8", len(data),
                      (("Set-Cookie", cookies.clear_session()),))
        self.wfile.write(data)

    # --- reading ---------------------------------------------------------------------------

    def h_state(self, screen: ScreenServer, s: Any, _q: str) -> None:
        seq, counters = screen.counters.snapshot()
        self._json(200, {"event_id": seq, "counters": counters, "catalogue": views.catalogue(),
                         "dispensing": bool(screen.pharmacy.finess),
                         "session_expires_iso": views._iso(s.expires_at)})

    def h_transaction(self, screen: ScreenServer, _s: Any, _q: str, tx: str) -> None:
        self._json(200, views.transaction(screen.store.get(tx)))

    def h_day(self, screen: ScreenServer, _s: Any, _q: str) -> None:
        biller = screen.store.biller
        assert isinstance(biller, JournalBiller)
        self._json(200, views.day(
            biller=biller, counts=screen.store.counts(), boards=dict(screen.boards()),
            timezone=screen.pharmacy.timezone, data_dir=screen.pharmacy.data_dir,
            trust=screen.trust, rights_reachable=screen.rights_reachable))

    def h_stream(self, screen: ScreenServer, s: Any, _q: str) -> None:
        try:
            last: int | None = int(self.headers.get("Last-Event-ID", ""))
        except ValueError:
            last = None
        li = screen.counters.listen(last)
        try:
            self._headers(200, "text/event-stream; charset=utf-8", None,
                          (("Connection", "close"),))
            self.close_connection = True
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            while not li.closed:
                if not screen.sessions.alive(s):
                    self.wfile.write(b"event: session\ndata: {\"expired\": true}\n\n")
                    self.wfile.flush()
                    return
                try:
                    item = li.queue.get(timeout=min(KEEPALIVE_S, max(
                        0.05, s.expires_at - clock.now())))
                except queue.Empty:
                    self.wfile.write(b": keepalive\n\n")
                    self.wfile.flush()
                    continue
                if item is None:
                    return
                n, kind, data = item
                payload = json.dumps(data, ensure_ascii=False)
                self.wfile.write(f"id: {n}\nevent: {kind}\ndata: {payload}\n\n".encode())
                self.wfile.flush()
        finally:
            screen.counters.unlisten(li)

    # --- acting: the same store calls and events as the API -------------------------------

    def h_choose(self, screen: ScreenServer, _s: Any, _q: str, tx: str) -> None:
        screen.store.get(tx)
        person = forms.person(self._body())
        view = screen.store.choose(tx, person)
        screen.feed.transaction_changed(view, "chosen")
        self._json(200, views.transaction(view))

    def h_dispense(self, screen: ScreenServer, _s: Any, _q: str, tx: str) -> None:
        screen.store.get(tx)
        d = forms.dispensation(self._body())
        ph = screen.pharmacy
        if not ph.finess or not ph.pharmacist_rpps:
            raise Refused(409, "no_pharmacy", "Dispensation depuis l'écran non configurée "
                                               "([screen] finess et pharmacist_rpps)")
        req = forms.request(d, finess=ph.finess, pharmacist_rpps=ph.pharmacist_rpps,
                            today=ph.today())
        view = screen.store.dispense(tx, req)
        screen.feed.transaction_changed(view, "dispensed")
        self._json(201, views.transaction(view))

    def h_cancel(self, screen: ScreenServer, _s: Any, _q: str, tx: str) -> None:
        view = screen.store.cancel(tx)
        screen.feed.transaction_changed(view, "cancelled")
        self._json(200, views.transaction(view))


_cache: dict[str, bytes] = {}


def _static(name: str) -> bytes:
    data = _cache.get(name)
    if data is None:
        data = resources.files("comptoir.screen").joinpath("static", name).read_bytes()
        _cache[name] = data
    return data
