"""The cap on connections open at once, for both HTTP fronts: past it, a connection is answered
503 and closed at once, without a thread (a burst of clients must not exhaust the daemon's
threads; an event stream holds its thread for as long as its client listens)."""

from __future__ import annotations

import logging
import threading
from http.server import ThreadingHTTPServer
from typing import Any


class CappedHTTPServer(ThreadingHTTPServer):
    """A thread per request, at most `max_connections` at once. A subclass says how many, what
    the refused client reads (`refusal_body`) and what the log says."""

    daemon_threads = True  # an event-stream client never blocks shutdown
    refusal_logger = logging.getLogger("comptoir.http")
    refusal_message = "connection refused: too many open"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._active = 0
        self._active_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    @property
    def max_connections(self) -> int:
        raise NotImplementedError

    @property
    def active(self) -> int:
        return self._active

    def refusal_body(self) -> bytes:
        """The JSON body of the 503 answer."""
        raise NotImplementedError

    def refusal_log_extra(self) -> dict[str, Any]:
        return {}

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._active_lock:
            full = self._active >= self.max_connections
            if not full:
                self._active += 1
        if full:
            # Refused without a thread: one short JSON answer, then the connection is closed.
            body = self.refusal_body()
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\n"
                                b"Content-Type: application/json; charset=utf-8\r\n"
                                b"Retry-After: 1\r\nConnection: close\r\n"
                                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                                + body)
            except OSError:
                pass
            self.refusal_logger.warning(self.refusal_message, extra=self.refusal_log_extra())
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._active_lock:
            self._active -= 1
