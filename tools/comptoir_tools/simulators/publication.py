"""The simulated insurer's publication of trust material (tests, soak, twin): a real HTTP
server on 127.0.0.1 serving `index.json`, `trust-list.cbor` and `status-<n>.cbor` as a host
fetches them (comptoir.tokens.refresh), made from a TestPki on demand.

    pub = Publication(pki, clock=lambda: t).start()
    pub.publish()                 # new trust list (next sequence) and status lists, dated now
    pub.rotate_issuer("CPAM TEST 1 bis"); pub.rotate_list_signer("2"); pub.publish()
    pub.outage = True             # every request answered 503
    pub.stop()

Generated keys only (derived from the PKI's seed).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from comptoir_tools.credentials.pki import DAY, Issuer, TestPki, publication_index


class Publication:
    def __init__(self, pki: TestPki, *, clock: Callable[[], float] = time.time,
                 validity: int = DAY, grace: int = 3 * DAY, ttl: int = 3600) -> None:
        self.pki = pki
        self.clock = clock
        self.validity = validity
        self.grace = grace
        self.ttl = ttl
        self.outage = False
        self.requests = 0
        self._lock = threading.Lock()
        self._files: dict[str, bytes] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._last_iat = 0

    # -- what is published ---------------------------------------------------------------------

    def publish(self) -> int:
        """Sign and publish a new trust list and every issuer's status list; their iat."""
        with self._lock:
            now = max(int(self.clock()), self._last_iat + 1)  # strictly newer each time
            self._last_iat = now
            files = {"trust-list.cbor": self.pki.trust_list(now=now, validity=self.validity,
                                                            grace=self.grace)}
            for n, issuer in enumerate(self.pki.issuers, 1):
                files[f"status-{n}.cbor"] = issuer.status_list(now=now, ttl=self.ttl,
                                                               validity=self.validity)
            files["index.json"] = json.dumps(publication_index(len(self.pki.issuers))).encode()
            self._files = files
        return now

    def rotate_issuer(self, name: str) -> Issuer:
        with self._lock:
            return self.pki.rotate_issuer(name)

    def rotate_list_signer(self, label: str) -> None:
        with self._lock:
            self.pki.rotate_list_signer(label)

    def file(self, name: str) -> bytes | None:
        with self._lock:
            return self._files.get(name)

    # -- server --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/pub"

    def start(self) -> Publication:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="insurer publication")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Publication:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(pub: Publication) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            pub.requests += 1
            name = self.path.split("?", 1)[0].removeprefix("/pub/")
            data = None if pub.outage else pub.file(name)
            status = 503 if pub.outage else 200 if data is not None else 404
            body = data if data is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
