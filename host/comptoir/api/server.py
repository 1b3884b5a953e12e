"""The HTTP server: loopback only, bearer token, JSON; one thread per request (the event stream
holds its thread for as long as the client listens)."""

from __future__ import annotations

import ipaddress
import json
import logging
import queue
import re
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from comptoir import __version__
from comptoir.events import BoardStatus
from comptoir.http.connections import CappedHTTPServer
from comptoir.http.errors import status_of
from comptoir.http.feed import EventFeed, Subscription
from comptoir.http.request_body import read_body
from comptoir.http.request_json import ApiError, parse_json
from comptoir.http.serving import HttpServing
from comptoir.metrics import CONTENT_TYPE as METRICS_TYPE
from comptoir.transactions import TransactionError, TransactionStore

from . import bodies
from .auth import authorized

log = logging.getLogger("comptoir.api")

KEEPALIVE_S = 15.0
TX_ID = r"(?P<tx>[^/]+)"
IDLE_TIMEOUT_S = 30.0  # a connection silent this long (no request, or a body that stalls) is closed
MAX_CONNECTIONS = 64  # at once, event streams included; more are refused with a 503
BACKLOG = 512  # connections the kernel queues before the server accepts them
_ERROR_CODES = {400: "bad_request", 408: "timeout", 411: "length_required",
                413: "too_large", 414: "uri_too_long", 431: "headers_too_large",
                501: "not_implemented", 503: "too_many_connections",
                505: "version_not_supported"}


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # as in the OpenAPI document
    handler: str
    auth: bool = True

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + self.path.replace("{id}", TX_ID) + "$")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/health", "health", auth=False),
    Route("GET", "/metrics", "metrics", auth=False),  # auth per config: see _needs_auth
    Route("GET", "/v1/boards", "boards"),
    Route("GET", "/v1/events", "events"),
    Route("GET", "/v1/transactions/{id}", "get_transaction"),
    Route("POST", "/v1/transactions/{id}/beneficiary", "choose"),
    Route("POST", "/v1/transactions/{id}/dispensation", "dispense"),
    Route("POST", "/v1/transactions/{id}/cancel", "cancel"),
    Route("POST", "/v1/transactions/{id}/rights", "refresh_rights"),
)


class _Server(CappedHTTPServer):
    request_queue_size = BACKLOG  # 5 by default: a burst of clients waited seconds in SYN retries
    refusal_logger = log
    refusal_message = "api connection refused: too many open"
    api: ApiServer

    @property
    def max_connections(self) -> int:
        return self.api.max_connections

    def refusal_body(self) -> bytes:
        return json.dumps({"error": "too_many_connections",
                           "detail": f"{self.api.max_connections} connections open; "
                                     "try again shortly"}).encode()

    def refusal_log_extra(self) -> dict[str, Any]:
        return {"max_connections": self.api.max_connections}


class ApiServer:
    def __init__(
        self,
        token: str,
        store: TransactionStore | None,
        feed: EventFeed,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        boards: Callable[[], Mapping[str, BoardStatus]] = dict,
        metrics: Any = None,
        metrics_auth: bool = False,
        trust: Callable[[], dict[str, Any]] | None = None,
        idle_timeout: float = IDLE_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        """`trust`: the trust material's report for /v1/health (TrustRefresher.report)."""
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"API host {host} is not a loopback address")
        self.token = token
        self.store = store
        self.feed = feed
        self.boards = boards
        self.metrics = metrics
        self.metrics_auth = metrics_auth
        self.trust = trust
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._streams: set[Subscription] = set()
        self._streams_lock = threading.Lock()
        server_cls = type("Server", (_Server,), {
            "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET})
        self.httpd: _Server = server_cls((host, port), _Handler)
        self.httpd.api = self
        self.host = host
        self.port = self.httpd.server_address[1]
        # A short poll: stop() (shutdown) returns within 0.1 s instead of 0.5 s.
        self.serving = HttpServing("api", self.httpd, poll_interval=0.1)

    @property
    def url(self) -> str:
        return f"http://{'[' + self.host + ']' if ':' in self.host else self.host}:{self.port}"

    def start(self) -> ApiServer:
        self.serving.start()
        log.info("api listening", extra={"url": self.url})
        return self

    def stop(self) -> None:
        with self._streams_lock:
            streams = list(self._streams)
        for s in streams:
            self.feed.unsubscribe(s)
        self.serving.stop()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_QUERY = re.compile(r"\?[^\s\"]*")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "comptoir"
    sys_version = ""

    # --- plumbing --------------------------------------------------------------------------

    def setup(self) -> None:
        self.timeout = self.server.api.idle_timeout  # idle keep-alive, stalled request or body
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines carry transaction ids, never personal data; a query string may carry
        # anything (a token pasted in a URL): it is never logged.
        line = _QUERY.sub("?...", format % args)
        log.debug("http", extra={"client": self.client_address[0], "line": line})

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Errors the HTTP layer finds itself (a bad request line, headers too large, an
        unknown method) are JSON like every other error, and close the connection."""
        self.close_connection = True
        if not self.request_version.startswith("HTTP/1."):
            self.request_version = "HTTP/1.1"  # an answer with a status line, whatever was sent
        detail = message or self.responses.get(code, ("error",))[0]
        if code == 501:
            detail = f"method {self.command!r} is not supported"
        try:
            data = json.dumps({"error": _ERROR_CODES.get(code, "error"),
                               "detail": detail}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:
            pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        api = self.server.api
        try:
            self._check_host(api)
            path = self.path.split("?", 1)[0]
            matches = [(r, m) for r in ROUTES if (m := r.pattern.match(path))]
            if not matches:
                raise ApiError(404, "not_found", f"no endpoint {path}")
            found = [(r, m) for r, m in matches if r.method == method]
            if not found:
                raise ApiError(405, "method_not_allowed", f"{method} is not allowed on {path}")
            route, match = found[0]
            if self._needs_auth(route, api) and not authorized(
                    self.headers.get("Authorization"), api.token):
                raise ApiError(401, "unauthorized", "missing or wrong bearer token")
            getattr(self, "h_" + route.handler)(api, **match.groupdict())
        except ApiError as e:
            self._json(e.status, {"error": e.code, "detail": e.detail, **e.extra})
        except TransactionError as e:
            extra = {"fields": list(e.fields)} if getattr(e, "fields", ()) else {}
            self._json(status_of(e), {"error": e.code, "detail": str(e), **extra})
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client left, or stopped reading
        except Exception:
            log.exception("api request failed")
            self._json(500, {"error": "internal", "detail": "internal error (see the log)"})

    def _needs_auth(self, route: Route, api: ApiServer) -> bool:
        return route.auth or (route.handler == "metrics" and api.metrics_auth)

    def _check_host(self, api: ApiServer) -> None:
        # A web page the pharmacist opens could reach 127.0.0.1 through DNS rebinding; its
        # requests carry a foreign Host header.
        host = (self.headers.get("Host") or "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in ("127.0.0.1", "localhost", "[::1]", api.host, f"[{api.host}]"):
            raise ApiError(403, "bad_host", "the Host header must name the loopback address")

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        return parse_json(read_body(self, bodies.MAX_BODY, bodies.READ_REFUSALS, ApiError))

    @staticmethod
    def _store(api: ApiServer) -> TransactionStore:
        if api.store is None:
            raise ApiError(503, "unavailable", "transactions are not enabled")
        return api.store

    # --- endpoints -------------------------------------------------------------------------

    def h_health(self, api: ApiServer) -> None:
        body: dict[str, Any] = {"status": "ok", "version": __version__}
        if api.trust is not None:
            body["trust"] = api.trust()
        self._json(200, body)

    def h_metrics(self, api: ApiServer) -> None:
        data = (api.metrics.render() if api.metrics is not None else "").encode()
        self.send_response(200)
        self.send_header("Content-Type", METRICS_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def h_boards(self, api: ApiServer) -> None:
        out = []
        for port, st in sorted(dict(api.boards()).items()):
            b = st.board
            out.append({"port": port, "state": st.state,
                        "board": None if b is None else {
                            "board_id": b.board_id, "name": b.name, "firmware": b.firmware,
                            "capabilities": list(b.capabilities)},
                        "link_errors": dict(st.counters)})
        self._json(200, {"boards": out})

    def h_get_transaction(self, api: ApiServer, tx: str) -> None:
        self._json(200, bodies.transaction(self._store(api).get(tx)))

    def h_choose(self, api: ApiServer, tx: str) -> None:
        store = self._store(api)
        store.get(tx)  # an unknown transaction is a 404 whatever the body
        person = self._parsed(bodies.beneficiary, self._body())
        view = store.choose(tx, person)
        api.feed.transaction_changed(view, "chosen")
        self._json(200, bodies.transaction(view))

    def h_dispense(self, api: ApiServer, tx: str) -> None:
        store = self._store(api)
        store.get(tx)
        req = self._parsed(bodies.dispensation, self._body())
        view = store.dispense(tx, req)
        api.feed.transaction_changed(view, "dispensed")
        self._json(201, bodies.transaction(view))

    def h_cancel(self, api: ApiServer, tx: str) -> None:
        view = self._store(api).cancel(tx)
        api.feed.transaction_changed(view, "cancelled")
        self._json(200, bodies.transaction(view))

    def h_refresh_rights(self, api: ApiServer, tx: str) -> None:
        """Ask the rights service again (e.g. the line is back); answers once it answered or
        failed, or after the dispensation's wait at most (then `rights_service` is pending)."""
        store = self._store(api)
        store.refresh_rights(tx)
        if store.rights is not None:
            store.wait_rights(tx, store.rights.dispense_wait)
        self._json(200, bodies.transaction(store.get(tx)))

    @staticmethod
    def _parsed(parse: Callable[[Any], Any], body: Any) -> Any:
        try:
            return parse(body)
        except bodies.BodyError as e:
            raise ApiError(422, "invalid_body", str(e), fields=list(e.fields)) from None

    def h_events(self, api: ApiServer) -> None:
        try:
            last = int(self.headers.get("Last-Event-ID", ""))
        except ValueError:
            last = None
        sub = api.feed.subscribe(last)
        with api._streams_lock:
            api._streams.add(sub)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(b"retry: 2000\n\n")
            self.wfile.flush()
            while not sub.closed:
                try:
                    item = sub.queue.get(timeout=KEEPALIVE_S)
                except queue.Empty:
                    self.wfile.write(b": keepalive\n\n")
                    self.wfile.flush()
                    continue
                if item is None:
                    break
                n, kind, data = item
                payload = json.dumps({"type": kind, **data}, ensure_ascii=False)
                self.wfile.write(f"id: {n}\nevent: {kind}\ndata: {payload}\n\n".encode())
                self.wfile.flush()
        finally:
            api.feed.unsubscribe(sub)
            with api._streams_lock:
                api._streams.discard(sub)
