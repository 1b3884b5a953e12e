"""Each counter (reader board) as the page shows it: its link, the last presentation and its
verdict, the transaction under way. Kept from the API's event feed (one subscription, one
thread), then handed to every open page, so that a page reading the state after an event sees
that event applied, and two pages on the same counter see the same thing."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from comptoir import clock
from comptoir.events import BoardStatus
from comptoir.http.feed import EventFeed
from comptoir.tasks import Health, QueueReader
from comptoir.transactions import TransactionView

log = logging.getLogger("comptoir.screen")

REPLAY = 256
TX_PORTS = 1024
QUEUE = 512
Item = tuple[int, str, dict[str, Any]]


class Listener:
    def __init__(self) -> None:
        self.queue: queue.Queue[Item | None] = queue.Queue(QUEUE)
        self.closed = False


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Counters:
    def __init__(self, feed: EventFeed,
                 boards: Callable[[], Mapping[str, BoardStatus]] = dict,
                 port_of: Callable[[str], str | None] = lambda tx: None) -> None:
        """`boards`: the daemon's board status (link state at start and for new ports);
        `port_of(tx)`: the port of a transaction this process did not see open."""
        self.feed = feed
        self.boards = boards
        self.port_of = port_of
        self._lock = threading.Lock()
        self._state: dict[str, dict[str, Any]] = {}
        # Recent transactions' counters (bounded: the daemon runs for months).
        self._tx_port: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._recent: collections.deque[Item] = collections.deque(maxlen=REPLAY)
        self._listeners: list[Listener] = []
        self._seq = 0
        self._sub = feed.subscribe()
        # A comptoir.tasks.Task: it reads the subscription until the feed's end mark (queued
        # when it unsubscribes: the events already given are applied first), then is joined.
        self.name = "screen counters"
        self._reader = QueueReader(self.name, self._sub.queue, self._handle,
                                   end=lambda: feed.unsubscribe(self._sub), join_s=5.0)

    def start(self, open_now: Iterable[TransactionView] = ()) -> Counters:
        """`open_now`: transactions still open when the screen starts (a daemon restarted
        while a patient was at the counter), shown on their counters until the next event."""
        with self._lock:
            for tx in sorted(open_now, key=lambda t: t.created_at):
                c = self._counter(tx.port)
                c["presentation"] = {
                    "verdict": "choose_beneficiary" if tx.state == "awaiting_beneficiary"
                    else "accepted", "reason": "", "channel": tx.channel,
                    "at": _iso(tx.created_at), "at_ms": int(tx.created_at * 1000)}
                c["transaction"], c["tx_state"] = tx.id, str(tx.state)
                self._tx_port[tx.id] = tx.port
        self._reader.start()
        return self

    def stop(self, wait: bool = True) -> None:
        self._reader.stop(wait)
        with self._lock:
            listeners = list(self._listeners)
        for li in listeners:
            self.unlisten(li)

    # --- state -----------------------------------------------------------------------------

    def _counter(self, port: str) -> dict[str, Any]:
        c = self._state.get(port)
        if c is None:
            c = {"port": port, "link": "absent", "board_id": None, "board_name": None,
                 "presentation": None, "transaction": None, "tx_state": None,
                 "link_reason": None, "tap_failed": None}
            self._state[port] = c
        return c

    def _sync_boards(self) -> None:
        """Ports the daemon knows that no event told us of yet (under the lock)."""
        for port, st in list(dict(self.boards()).items()):
            if port not in self._state:
                c = self._counter(port)
                c["link"] = st.state
                if st.board is not None:
                    c["board_id"], c["board_name"] = st.board.board_id, st.board.name

    def snapshot(self) -> tuple[int, list[dict[str, Any]]]:
        """(the last event id applied, every counter in port order)."""
        with self._lock:
            self._sync_boards()
            return self._seq, [dict(self._state[p]) for p in sorted(self._state)]

    def health(self) -> Health:
        return self._reader.health()

    def _handle(self, item: Item) -> None:
        try:
            self._apply(item)
        except Exception:
            log.exception("counter screen: event not applied")

    def _apply(self, item: Item) -> None:
        n, kind, data = item
        port = data.get("port")
        if kind == "transaction" and not port:
            tx = data.get("transaction")
            port = self._tx_port.get(tx) if isinstance(tx, str) else None
            if port is None and isinstance(tx, str):
                with contextlib.suppress(Exception):
                    port = self.port_of(tx)
        with self._lock:
            self._sync_boards()
            self._seq = n
            out: dict[str, Any]
            if kind == "board" and port:
                c = self._counter(port)
                c["link"], c["link_reason"] = data.get("state"), data.get("reason")
                if data.get("board_id"):
                    c["board_id"] = data["board_id"]
                if data.get("name"):
                    c["board_name"] = data["name"]
                out = {"counter": dict(c)}
            elif kind in ("presentation", "tap_failed") and port:
                c = self._counter(port)
                now = clock.now()
                if kind == "tap_failed":
                    # A read that broke off (the phone moved away): said on the counter, but
                    # the last verdict and its transaction stay what they are.
                    c["tap_failed"] = {"code": data.get("code"), "at": _iso(now),
                                       "at_ms": int(now * 1000)}
                else:
                    c["presentation"] = {"verdict": data.get("verdict"),
                                         "reason": data.get("reason"),
                                         "channel": data.get("channel"), "at": _iso(now),
                                         "at_ms": int(now * 1000)}
                    tx = data.get("transaction")
                    c["transaction"], c["tx_state"] = tx, data.get("state")
                    if isinstance(tx, str):
                        self._tx_port[tx] = port
                        while len(self._tx_port) > TX_PORTS:
                            self._tx_port.popitem(last=False)
                out = {"counter": dict(c)}
            elif kind == "transaction" and port:
                c = self._counter(port)
                if c["transaction"] == data.get("transaction"):
                    c["tx_state"] = data.get("state")
                out = {"counter": dict(c), "transaction": data.get("transaction"),
                       "action": data.get("action")}
            elif kind == "trust":
                out = {"alert": "trust"}
            else:
                return
            item_out: Item = (n, "counter" if "counter" in out else "day", out)
            self._recent.append(item_out)
            listeners = list(self._listeners)
        for li in listeners:
            try:
                li.queue.put_nowait(item_out)
            except queue.Full:
                self.unlisten(li)

    # --- pages -----------------------------------------------------------------------------

    def listen(self, last_id: int | None = None) -> Listener:
        li = Listener()
        with self._lock:
            if last_id is not None:
                for item in self._recent:
                    if item[0] > last_id:
                        li.queue.put_nowait(item)
            self._listeners.append(li)
        return li

    def unlisten(self, li: Listener) -> None:
        with self._lock:
            if li in self._listeners:
                self._listeners.remove(li)
        if not li.closed:
            li.closed = True
            with contextlib.suppress(queue.Full):
                li.queue.put_nowait(None)
