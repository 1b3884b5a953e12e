"""Trust material that stays current while the daemon runs for months.

One round (`TrustRefresher.check`, run by `run()` every `check_every` seconds):

1. **The trust directory**: a `trust-list.cbor` or `status-*.cbor` an administrator dropped
   there (or changed) since the last round is loaded.
2. **The insurer's publication URL**, when configured and when due: `index.json` names the
   files (`{"trust_list": "trust-list.cbor", "status_lists": ["status-1.cbor", ...]}`), the
   trust list first (a rotated issuer's certificate must be known before its status list),
   then every status list. What verifies and is newer replaces what is held, and is written
   into the trust directory (atomically) so that a restart starts from it. The index itself
   is not trusted: it only names files, each of which must verify.

**Due**: taken from the lists' own times: a status list at `iat + ttl` (and at mid-validity at
the latest), the trust list at mid-validity; never more often than `min_interval`. After a
failed fetch, the next try waits `retry` seconds, doubling up to `retry_max`.

**Any failure keeps the last good list** (TrustStore and StatusLists only ever replace a list
with a verified newer one). A list past its `exp` is used during its grace; entering the grace
is alerted (log warning and a `trust` event) days before the grace ends, and again when the
grace is over (log error: presentations are refused).

Time comes from `comptoir.clock` (tests make days pass in seconds).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comptoir.clock import now as clock_now

from .reasons import TokenError
from .status import NotNewer, StatusLists
from .trust import TrustStore

log = logging.getLogger("comptoir.trust")

TRUST_LIST = "trust-list.cbor"
INDEX = "index.json"
_STATUS_NAME = re.compile(r"^status-[A-Za-z0-9_.-]{1,64}\.cbor$")
MAX_FILE = 2 << 20  # a status list is at most 2 MiB on the wire (status.py)


class FetchError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ListState:
    """One list as the health endpoint and the metrics show it."""

    name: str  # "trust_list" or the status list's id
    kind: str  # "trust" | "status"
    issued_at: int
    expires_at: int
    grace_ends_at: int
    state: str  # "ok" | "grace" | "expired"

    def report(self, now: int) -> dict[str, Any]:
        return {"list": self.name, "kind": self.kind, "issued_at": self.issued_at,
                "expires_at": self.expires_at, "grace_ends_at": self.grace_ends_at,
                "age_s": max(0, now - self.issued_at), "state": self.state}


def _label(ls: ListState) -> str:
    name = ls.name.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'{{kind="{ls.kind}",list="{name}"}}'


def _state(now: int, expires_at: int, grace_ends_at: int) -> str:
    if now <= expires_at:
        return "ok"
    return "grace" if now <= grace_ends_at else "expired"


def http_get(url: str, timeout: float) -> bytes:
    """GET a file of the publication; FetchError on anything but a 200 of bounded size."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            data = r.read(MAX_FILE + 1)
    except (OSError, urllib.error.URLError, ValueError) as e:
        raise FetchError(f"{url}: {e}") from None
    if len(data) > MAX_FILE:
        raise FetchError(f"{url}: larger than {MAX_FILE} bytes")
    return bytes(data)


class TrustRefresher:
    def __init__(
        self,
        trust: TrustStore,
        status: StatusLists,
        directory: Path,
        *,
        url: str = "",
        check_every: float = 60.0,
        min_interval: float = 60.0,
        retry: float = 60.0,
        retry_max: float = 3600.0,
        timeout: float = 10.0,
        publish: Callable[[str, dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = clock_now,
        get: Callable[[str, float], bytes] = http_get,
    ) -> None:
        if url:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("trust publication URL must be http(s)://host[:port][/path]")
        self.trust = trust
        self.status = status
        self.directory = directory
        self.url = url.rstrip("/")
        self.check_every = check_every
        self.min_interval = min_interval
        self.retry_base = retry
        self.retry_max = retry_max
        self.timeout = timeout
        self._publish = publish
        self._clock = clock
        self._get = get
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, int]] = {}  # file name -> (mtime_ns, size)
        self._loaded: dict[str, bytes] = {}  # file name -> sha256 of what was loaded last
        self._alerted: dict[str, str] = {}  # list name -> state last alerted
        self._next_fetch = 0.0
        self._retry = retry
        self.last_fetch_ok: int | None = None
        self.last_fetch_error: str | None = None
        self.fetches: dict[str, int] = {}  # result -> count ("ok", "failed")
        self.loads: dict[str, int] = {}  # "trust"/"status" -> lists installed
        self.rounds = 0  # rounds done (tests wait for one after moving the clock)

    def set_publisher(self, publish: Callable[[str, dict[str, Any]], None]) -> None:
        """Where alerts go besides the log (the event stream's EventFeed.publish)."""
        self._publish = publish

    # --- rounds ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        while True:
            try:
                self.check()
            except Exception:
                log.exception("trust refresh round failed; the held lists stay in use")
            if stop.wait(self.check_every):
                return

    def check(self) -> None:
        with self._lock:
            self._scan_directory()
            now = self._clock()
            if self.url and now >= self._next_fetch:
                self._fetch_round(now)
            self._alerts(int(self._clock()))
            self.rounds += 1

    # --- the directory ---------------------------------------------------------------------

    def _scan_directory(self) -> None:
        try:
            status_names = sorted(p.name for p in self.directory.glob("status-*.cbor")
                                  if _STATUS_NAME.match(p.name))
        except OSError:
            return
        for name in [TRUST_LIST, *status_names]:
            path = self.directory / name
            try:
                st = path.stat()
            except OSError:
                continue
            mark = (st.st_mtime_ns, st.st_size)
            if self._seen.get(name) == mark:
                continue
            self._seen[name] = mark
            try:
                data = path.read_bytes()
            except OSError as e:
                log.warning("trust file unreadable", extra={"file": str(path), "error": str(e)})
                continue
            self._offer(name, data, source=str(path))

    # --- the publication -------------------------------------------------------------------

    def _fetch_round(self, now: float) -> None:
        try:
            index = json.loads(self._get(f"{self.url}/{INDEX}", self.timeout))
            names = self._index_names(index)
            files = [(n, self._get(f"{self.url}/{urllib.parse.quote(n)}", self.timeout))
                     for n in names]
        except (FetchError, ValueError) as e:
            self._fetch_failed(now, str(e))
            return
        refused = []
        for name, data in files:
            if not self._offer(name, data, source=f"{self.url}/{name}", keep=True):
                refused.append(name)
        if refused:
            self._fetch_failed(now, "refused: " + ", ".join(refused))
            return
        self.fetches["ok"] = self.fetches.get("ok", 0) + 1
        self.last_fetch_ok = int(now)
        if self.last_fetch_error is not None:
            log.info("trust publication reachable again")
        self.last_fetch_error = None
        self._retry = self.retry_base
        self._next_fetch = self._due(now)

    @staticmethod
    def _index_names(index: Any) -> list[str]:
        if not isinstance(index, dict):
            raise ValueError("index.json is not an object")
        trust_name = index.get("trust_list")
        status_names = index.get("status_lists", [])
        if trust_name != TRUST_LIST or not isinstance(status_names, list) or not all(
                isinstance(n, str) and _STATUS_NAME.match(n) for n in status_names):
            raise ValueError("index.json names unexpected files")
        return [TRUST_LIST, *status_names]

    def _fetch_failed(self, now: float, why: str) -> None:
        self.fetches["failed"] = self.fetches.get("failed", 0) + 1
        if self.last_fetch_error is None:
            log.warning("trust publication fetch failed; the held lists stay in use",
                        extra={"error": why, "retry_in_s": self._retry})
        self.last_fetch_error = why
        self._next_fetch = now + self._retry
        self._retry = min(self._retry * 2, self.retry_max)

    def _due(self, now: float) -> float:
        """When to fetch again, from the held lists' own times."""
        due: list[float] = []
        tl = self.trust.current
        if tl is not None:
            due.append(tl.issued_at + (tl.expires_at - tl.issued_at) / 2)
        for sl in self.status.held():
            mid = sl.issued_at + (sl.expires_at - sl.issued_at) / 2
            due.append(min(sl.issued_at + sl.ttl, mid))
        return max(now + self.min_interval, min(due) if due else now)

    # --- loading ---------------------------------------------------------------------------

    def _offer(self, name: str, data: bytes, *, source: str, keep: bool = False) -> bool:
        """Load one file if it is new; False if it was refused (the held list stays)."""
        digest = hashlib.sha256(data).digest()
        if self._loaded.get(name) == digest:
            return True
        now = int(self._clock())
        try:
            if name == TRUST_LIST:
                held = self.trust.current
                new = self.trust.load(data, now)
                if held is not None and new.sequence == held.sequence:
                    pass  # the same list again
                else:
                    self.loads["trust"] = self.loads.get("trust", 0) + 1
                    log.info("trust list loaded", extra={"source": source,
                                                         "sequence": new.sequence,
                                                         "expires_at": new.expires_at})
            else:
                sl = self.status.load(data, now)
                self.loads["status"] = self.loads.get("status", 0) + 1
                log.info("status list loaded", extra={"source": source, "list": sl.list_id,
                                                      "issued_at": sl.issued_at})
        except NotNewer:
            pass  # the held list is as new or newer: nothing to do
        except TokenError as e:
            log.warning("trust material refused; the held list stays in use",
                        extra={"source": source, "error": str(e)})
            return False
        self._loaded[name] = digest
        if keep:
            self._keep(name, data)
        return True

    def _keep(self, name: str, data: bytes) -> None:
        """Write a fetched file into the trust directory so that a restart starts from it."""
        path = self.directory / name
        try:
            if path.exists() and path.read_bytes() == data:
                return
            tmp = path.with_name(f".{name}.tmp-{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            st = path.stat()
            self._seen[name] = (st.st_mtime_ns, st.st_size)
        except OSError as e:
            log.warning("fetched trust file not kept on disk",
                        extra={"file": str(path), "error": str(e)})

    # --- age, alerts, reports ---------------------------------------------------------------

    def lists(self) -> list[ListState]:
        now = int(self._clock())
        out = []
        tl = self.trust.current
        if tl is not None:
            out.append(ListState("trust_list", "trust", tl.issued_at, tl.expires_at,
                                 tl.expires_at + tl.grace,
                                 _state(now, tl.expires_at, tl.expires_at + tl.grace)))
        for sl in sorted(self.status.held(), key=lambda s: s.list_id):
            end = sl.expires_at + self.status.grace
            out.append(ListState(sl.list_id, "status", sl.issued_at, sl.expires_at, end,
                                 _state(now, sl.expires_at, end)))
        return out

    def _alerts(self, now: int) -> None:
        for ls in self.lists():
            before = self._alerted.get(ls.name, "ok")
            if ls.state == before:
                continue
            self._alerted[ls.name] = ls.state
            rec = ls.report(now)
            if ls.state == "grace":
                log.warning("trust material past its expiry: in grace until grace_ends_at, "
                            "then every presentation is refused", extra=rec)
            elif ls.state == "expired":
                log.error("trust material expired past its grace: presentations are refused",
                          extra=rec)
            else:
                log.info("trust material current again", extra=rec)
            if self._publish is not None:
                self._publish("trust", rec)

    def report(self) -> dict[str, Any]:
        """For GET /v1/health: each list's age and state, the publication's last fetch."""
        now = int(self._clock())
        lists = self.lists()
        states = {ls.state for ls in lists}
        overall = ("expired" if "expired" in states or not lists
                   else "grace" if "grace" in states else "ok")
        return {"state": overall, "lists": [ls.report(now) for ls in lists],
                "publication": None if not self.url else {
                    "last_success": self.last_fetch_ok, "last_error": self.last_fetch_error,
                    "next_fetch": int(self._next_fetch)}}

    def metric_lines(self) -> list[str]:
        now = int(self._clock())
        lists = self.lists()
        out = ["# HELP comptoir_trust_list_age_seconds Age of each held trust or status list "
               "(now - iat).",
               "# TYPE comptoir_trust_list_age_seconds gauge"]
        out += [f"comptoir_trust_list_age_seconds{_label(ls)} {max(0, now - ls.issued_at)}"
                for ls in lists]
        out += ["# HELP comptoir_trust_list_grace_remaining_seconds Seconds until the list's "
                "grace ends (presentations refused then); negative once over.",
                "# TYPE comptoir_trust_list_grace_remaining_seconds gauge"]
        out += [f"comptoir_trust_list_grace_remaining_seconds{_label(ls)} "
                f"{ls.grace_ends_at - now}" for ls in lists]
        out += ["# HELP comptoir_trust_list_expired 1 if the list is past its exp (in grace or "
                "beyond), else 0.",
                "# TYPE comptoir_trust_list_expired gauge"]
        out += [f"comptoir_trust_list_expired{_label(ls)} {int(ls.state != 'ok')}" for ls in lists]
        if self.url:
            out += ["# HELP comptoir_trust_fetches_total Fetch rounds of the insurer's "
                    "publication by result.", "# TYPE comptoir_trust_fetches_total counter"]
            out += [f'comptoir_trust_fetches_total{{result="{k}"}} {v}'
                    for k, v in sorted(self.fetches.items())]
            if self.last_fetch_ok is not None:
                out += ["# HELP comptoir_trust_last_fetch_timestamp_seconds Unix time of the "
                        "last good fetch.",
                        "# TYPE comptoir_trust_last_fetch_timestamp_seconds gauge",
                        f"comptoir_trust_last_fetch_timestamp_seconds {self.last_fetch_ok}"]
        return out
