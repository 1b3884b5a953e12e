"""Event ids survive a restart (issue 15): a client that reconnects with the Last-Event-ID it
had before the daemon restarted receives what happened since, through a real socket."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from comptoir.api import ApiServer, EventFeed
from comptoir.http.feed import EventIds

TOKEN = "t" * 43


def stream(port: int, last_id: int | None, n: int) -> list[tuple[int, dict]]:
    """Read `n` events from /v1/events, sending Last-Event-ID."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    extra = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
    sock.sendall(f"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}"
                 f"\r\n{extra}\r\n".encode())
    buf, out = b"", []
    try:
        while len(out) < n:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                m = re.search(rb"^id: (\d+)$.*^data: (.*)$", block, re.M | re.S)
                if m:
                    out.append((int(m.group(1)), json.loads(m.group(2))))
    except TimeoutError:
        pass
    sock.close()
    return out


def daemon(path: Path) -> tuple[EventFeed, ApiServer]:
    feed = EventFeed(None, EventIds(path))
    return feed, ApiServer(TOKEN, None, feed, port=0).start()


def test_last_event_id_works_across_a_restart(tmp_path: Path) -> None:
    ids = tmp_path / "event-ids"
    feed, api = daemon(ids)
    for n in range(5):
        feed.publish("board", {"port": f"before-{n}", "state": "up"})
    seen = stream(api.port, 0, 5)
    assert [d["port"] for _, d in seen] == [f"before-{n}" for n in range(5)]
    last = seen[-1][0]
    api.stop()
    feed.close()

    feed, api = daemon(ids)  # the restart
    try:
        for n in range(3):
            feed.publish("board", {"port": f"after-{n}", "state": "up"})
        again = stream(api.port, last, 3)
        assert [d["port"] for _, d in again] == ["after-0", "after-1", "after-2"]
        assert all(i > last for i, _ in again)
    finally:
        api.stop()
        feed.close()
    assert ids.stat().st_mode & 0o777 == 0o600


def test_ids_increase_across_many_restarts_with_few_writes(tmp_path: Path) -> None:
    path = tmp_path / "event-ids"
    seen: list[int] = []
    for _ in range(5):
        ids = EventIds(path)
        seen += [next(ids) for _ in range(1500)]  # crosses a block
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    damaged = tmp_path / "damaged"
    damaged.write_text("not a number")
    assert next(EventIds(damaged)) > seen[-1]
