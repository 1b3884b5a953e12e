"""An HTTP server's accept loop as a background task (comptoir.tasks.Task: start, stop,
health), for the API and the counter screen alike: stopped the one way, told (`shutdown`, which
returns once the loop has ended its poll), the socket closed, the thread joined."""

from __future__ import annotations

import threading
from socketserver import BaseServer

from comptoir.tasks import Health

JOIN_S = 5.0


class HttpServing:
    def __init__(self, name: str, httpd: BaseServer, *, poll_interval: float = 0.5) -> None:
        self.name = name
        self.httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name=name,
                                        kwargs={"poll_interval": poll_interval}, daemon=True)
        self._started = False

    def start(self) -> None:
        self._started = True
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Requests under way run on (their threads are daemons: an event stream never blocks
        a stop); no new connection is accepted."""
        if self._started:
            self.httpd.shutdown()  # blocks until serve_forever has returned, never started it
        self.httpd.server_close()
        if wait and self._started:
            self._thread.join(timeout=JOIN_S)

    def health(self) -> Health:
        if not self._started:
            return "idle"
        return "running" if self._thread.is_alive() else "stopped"
