"""What the local-API tests share: a JSON client, an event-stream reader and a stand-in for
the daemon's subscription interface (the services only subscribe and read board status)."""

from __future__ import annotations

import json
import re
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

from comptoir.events import BoardStatus


def call(base: str, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request to the local API -> (HTTP status, decoded JSON body)."""
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def read_events(port: int, token: str, n: int, out: list[dict[str, Any]],
                ready: threading.Event) -> None:
    """Read `n` events from /v1/events into `out`; `ready` is set once the stream is open."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Bearer {token}\r\n\r\n".encode())
    buf = b""
    while len(out) < n:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
        if b"retry:" in buf:
            ready.set()
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            m = re.search(rb"^data: (.*)$", block, re.M)
            if m:
                out.append(json.loads(m.group(1)))
    sock.close()


class SubscribableDaemon:
    """The daemon as the services see it: board status, subscribe; publish plays the event
    thread."""

    def __init__(self) -> None:
        self.status: dict[str, BoardStatus] = {}
        self.subscribers: list[Any] = []

    def subscribe(self, fn: Any) -> None:
        self.subscribers.append(fn)

    def publish(self, ev: Any) -> None:
        for fn in self.subscribers:
            fn(ev)
