"""The counter screen's HTTP plumbing, under its routes (server.py): the security headers
(a strict Content-Security-Policy), a request body read whole and bounded (the API's reader,
comptoir.http.request_body, with the screen's limit and words), the strict JSON parser, the
Host rule and the session cookie. A refusal is a Refused, answered as JSON."""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler
from typing import Any

from comptoir.http.request_body import read_body
from comptoir.http.request_json import ApiError, parse_json

from . import cookies
from .sessions import Sessions

log = logging.getLogger("comptoir.screen")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
MAX_BODY = 16 * 1024
# What the screen answers when a body cannot be read (comptoir.http.request_body).
READ_REFUSALS = {
    "length_required": "Corps sans Content-Length",
    "bad_length": "Content-Length invalide",
    "too_large": "Requête trop grande",
    "timeout": "Le corps de la requête a cessé d'arriver : rien n'a été fait",
    "short": "Corps incomplet",
}
IDLE_TIMEOUT_S = 30.0


class Refused(Exception):
    """A request the screen answers with a status, a code and a French message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ScreenHandlerBase(BaseHTTPRequestHandler):
    server_version = "comptoir"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    _raw = b""
    timeout = IDLE_TIMEOUT_S  # a silent keep-alive connection, or a stalled body, is closed

    def log_message(self, format: str, *args: Any) -> None:
        # No query strings (the sign-in secret), no personal data.
        log.debug("screen request", extra={"line": (self.requestline.split("?")[0])[:200]})

    def _check_host(self, screen_host: str) -> None:
        # The API's rule: a page reaching 127.0.0.1 through DNS rebinding names another host.
        host = (self.headers.get("Host") or "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in ("127.0.0.1", "localhost", "[::1]", screen_host, f"[{screen_host}]"):
            raise Refused(403, "bad_host", "L'en-tête Host doit nommer l'adresse locale")

    def _session(self, sessions: Sessions) -> Any:
        s = sessions.get(cookies.session_id(self.headers.get("Cookie")))
        if s is None:
            raise Refused(401, "no_session", "Session absente ou expirée : ouvrez le lien "
                                              "que donne `comptoir screen`")
        return s

    def _headers(self, status: int, ctype: str, length: int | None,
                 extra: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self._headers(status, "application/json; charset=utf-8", len(data))
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        return read_body(self, MAX_BODY, READ_REFUSALS, Refused)

    def _body(self) -> Any:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise Refused(415, "unsupported_media_type", "JSON attendu")
        try:
            return parse_json(self._raw)
        except ApiError as e:
            raise Refused(422, "invalid_json", e.detail) from None
