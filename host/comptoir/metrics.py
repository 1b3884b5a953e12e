"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand: a few
counters, one histogram and two gauges do not need a client library.

`Metrics.on_event` is a daemon subscriber; it runs on the daemon's event thread while
`render()` runs on an API thread, so both take the lock. No label ever holds personal data:
labels are channels, verdict names, reason names, ports and board ids.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from comptoir.events import BoardDown, BoardUp, LinkError, PortLost
from comptoir.nfc_service import Presentation, TapFailed
from comptoir.tokens.model import Verified

# Host-side latency: from the last byte of a presentation on the serial line to its verdict.
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{_esc(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, v: float) -> None:
        for i, edge in enumerate(self.buckets):
            if v <= edge:
                self.counts[i] += 1
        self.total += 1
        self.sum += v


class Metrics:
    def __init__(self, boards_up: Callable[[], Mapping[str, str]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`boards_up`: port -> state, read at each scrape (e.g. from Daemon.status)."""
        self._lock = threading.Lock()
        self._clock = clock
        self._boards = boards_up
        self.reads: dict[Labels, int] = {}
        self.verdicts: dict[Labels, int] = {}
        self.tap_failures: dict[Labels, int] = {}
        self.link_errors: dict[Labels, int] = {}
        self.board_events: dict[Labels, int] = {}
        self.latency: dict[Labels, Histogram] = {}
        self.transactions: dict[Labels, int] = {}
        # The background rights sync (comptoir.rights.sync_task.RightsSync), when it runs.
        self.sync_rounds: dict[Labels, int] = {}
        self.sync_last_ok: dict[Labels, float] = {}  # unix time of the last good round
        self.families_refreshed = 0
        self.opposition_seq: int | None = None
        self.rights_service_reachable: bool | None = None
        # Other parts' own lines (e.g. the trust refresher's list ages), read at each scrape.
        self.sources: list[Callable[[], list[str]]] = []

    @staticmethod
    def _inc(table: dict[Labels, int], labels: Labels, n: int = 1) -> None:
        table[labels] = table.get(labels, 0) + n

    def count_transaction(self, action: str) -> None:
        """Transactions opened, beneficiaries chosen, care sheets, cancellations."""
        with self._lock:
            self._inc(self.transactions, (("action", action),))

    def rights_sync(self, kind: str, result: str, at: float, *, families: int = 0,
                    seq: int | None = None) -> None:
        """One round of the background rights sync: `kind` opposition | refresh, `result` ok |
        unavailable | rejected | error; `at` its unix time; `families` answered by the
        service; `seq` the opposition list's position after the round."""
        with self._lock:
            self._inc(self.sync_rounds, (("kind", kind), ("result", result)))
            if result == "ok":
                self.sync_last_ok[(("kind", kind),)] = at
            self.families_refreshed += families
            if seq is not None:
                self.opposition_seq = seq

    def rights_opposition_seq(self, seq: int) -> None:
        with self._lock:
            self.opposition_seq = seq

    def rights_service(self, reachable: bool) -> None:
        with self._lock:
            self.rights_service_reachable = reachable

    def on_event(self, ev: Any) -> None:
        with self._lock:
            if isinstance(ev, Presentation):
                ch = (("channel", ev.channel),)
                self._inc(self.reads, ch)
                if isinstance(ev.result, Verified):
                    verdict = "choose_beneficiary" if ev.result.beneficiaries else "accepted"
                    reason = ""
                else:
                    verdict, reason = "refused", ev.result.reason.value
                self._inc(self.verdicts, (*ch, ("verdict", verdict), ("reason", reason)))
                if ev.received_at:
                    h = self.latency.setdefault(ch, Histogram(LATENCY_BUCKETS))
                    h.observe(max(0.0, self._clock() - ev.received_at))
            elif isinstance(ev, TapFailed):
                self._inc(self.tap_failures, (("port", ev.port), ("code", str(ev.code))))
            elif isinstance(ev, LinkError):
                self._inc(self.link_errors, (("port", ev.port), ("counter", ev.counter)))
            elif isinstance(ev, BoardUp | BoardDown | PortLost):
                kind = {BoardUp: "up", BoardDown: "down", PortLost: "port_lost"}[type(ev)]
                self._inc(self.board_events, (("port", ev.port), ("event", kind)))

    def render(self) -> str:
        out: list[str] = []

        def family(name: str, kind: str, help_text: str, table: dict[Labels, int]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            for labels, v in sorted(table.items()):
                out.append(f"{name}{_labels(labels)} {_num(v)}")

        with self._lock:
            family("comptoir_reads_total", "counter",
                   "Presentations read (NFC taps, QR screens) and verified or refused.",
                   self.reads)
            family("comptoir_verdicts_total", "counter",
                   "Verdicts by channel, verdict and refusal reason.", self.verdicts)
            family("comptoir_tap_failures_total", "counter",
                   "NFC taps that failed before a presentation was read, by TAP_ERROR code.",
                   self.tap_failures)
            family("comptoir_link_errors_total", "counter",
                   "Serial link errors by port and kind (crc, sequence, timeout...).",
                   self.link_errors)
            family("comptoir_board_events_total", "counter",
                   "Board sessions up/down and ports lost (unplugged).", self.board_events)
            family("comptoir_transactions_total", "counter",
                   "Transactions by action (opened, chosen, dispensed, cancelled).",
                   self.transactions)
            if self.sync_rounds:
                family("comptoir_rights_sync_rounds_total", "counter",
                       "Rounds of the background rights sync by kind (opposition, refresh) "
                       "and result (ok, unavailable, rejected, error).", self.sync_rounds)
                family("comptoir_rights_sync_last_success_timestamp_seconds", "gauge",
                       "Unix time of the last successful round, by kind.",
                       {k: int(v) for k, v in self.sync_last_ok.items()})
                family("comptoir_rights_families_refreshed_total", "counter",
                       "Cached families answered by the rights service in background rounds.",
                       {(): self.families_refreshed})
            if self.opposition_seq is not None:
                family("comptoir_rights_opposition_seq", "gauge",
                       "Position in the rights service's opposition list the cache has read.",
                       {(): self.opposition_seq})
            if self.rights_service_reachable is not None:
                family("comptoir_rights_service_reachable", "gauge",
                       "1 if the background sync's last request reached the rights service, "
                       "0 during an outage (the counter works from the offline cache).",
                       {(): int(self.rights_service_reachable)})
            name = "comptoir_presentation_latency_seconds"
            out.append(f"# HELP {name} From the presentation's last byte at the host to its "
                       "verdict (host side: reassembly, decoding, verification).")
            out.append(f"# TYPE {name} histogram")
            for labels, h in sorted(self.latency.items()):
                for edge, c in (*zip(h.buckets, h.counts, strict=True), ("+Inf", h.total)):
                    le = 'le="' + str(edge) + '"'
                    out.append(f"{name}_bucket{_labels(labels, le)} {c}")
                out.append(f"{name}_sum{_labels(labels)} {_num(h.sum)}")
                out.append(f"{name}_count{_labels(labels)} {h.total}")
        states = dict(self._boards()) if self._boards else {}
        out.append("# HELP comptoir_boards_up Boards with an admitted session now.")
        out.append("# TYPE comptoir_boards_up gauge")
        out.append(f"comptoir_boards_up {sum(1 for s in states.values() if s == 'up')}")
        out.append("# HELP comptoir_board_up 1 if the board on this port is up, else 0.")
        out.append("# TYPE comptoir_board_up gauge")
        for port, s in sorted(states.items()):
            out.append(f"comptoir_board_up{_labels((('port', port),))} {int(s == 'up')}")
        for source in list(self.sources):
            out.extend(source())
        return "\n".join(out) + "\n"
