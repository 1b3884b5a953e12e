"""The rights cache between patients: the background task of `comptoir run` that pulls the
opposition list and refreshes the oldest cached families from the insurer's rights service."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from comptoir.clock import monotonic as clock_monotonic
from comptoir.clock import now as clock_now

from .cache import RightsCache, SyncReport
from .client import RightsClient
from .errors import ServiceError, ServiceUnavailable

if TYPE_CHECKING:
    from comptoir.metrics import Metrics

log = logging.getLogger("comptoir.rights")


class RightsSync:
    """What `comptoir run` does with the rights service between patients (a thread started by
    `start_app` when `cache.service_url` is set):

    * every `opposition_every` seconds, pull the opposition list (phones declared lost or
      stolen): a later presentation of such a phone, and every open transaction made with it,
      shows `blocked` and no care sheet is made on it;
    * every `refresh_every` seconds, ask again for at most `max_families` cached families
      whose rights are older than `older_than` seconds, oldest first (0 families: off).

    The families a round asks about are claimed for `refresh_every` seconds in the cache
    (claims.py): the other counters sharing it skip them, so the insurer is asked about each
    stale family once per period for the pharmacy, not once per counter.

    It goes through its own client (its own connection, so that a batch never delays the
    counter's look-ups) sharing the counter's circuit breaker: while the service is down no
    request goes out until the breaker's cool-down, a round fails at once and the next one
    waits its turn. An outage is logged once when it starts and once when it ends; a refresh
    round that failed is run again as soon as an opposition pull succeeds. Nothing raised in a
    round stops the task. Logs and metrics hold counts and reasons, never a NIR or a name."""

    def __init__(self, cache: RightsCache, client: RightsClient, *, opposition_every: float,
                 refresh_every: float, older_than: int, max_families: int,
                 metrics: Metrics | None = None, clock: Callable[[], float] = clock_now) -> None:
        self.cache = cache
        self.client = client
        self.opposition_every = opposition_every
        self.refresh_every = refresh_every
        self.older_than = older_than
        self.max_families = max_families
        self.metrics = metrics
        self._clock = clock
        self._trouble: str | None = None  # the kind of the failure streak under way
        self._trouble_since = 0.0
        self._refresh_owed = False
        self.last_report: SyncReport | None = None  # of the last refresh round
        if metrics is not None:
            metrics.rights_opposition_seq(cache.opposition_seq)

    def run(self, stop: threading.Event) -> None:
        """Both rounds at once (the PC may have been off), then each on its own period,
        until `stop` is set."""
        next_opp = next_refresh = clock_monotonic()
        while True:
            if clock_monotonic() >= next_opp:
                if self.pull_oppositions() and self._refresh_owed:
                    next_refresh = 0.0  # the service is back: the failed round now
                next_opp = clock_monotonic() + self.opposition_every
            if stop.is_set():
                return
            if self.max_families and clock_monotonic() >= next_refresh:
                self.refresh(stop)
                next_refresh = clock_monotonic() + self.refresh_every
            due = next_opp if not self.max_families else min(next_opp, next_refresh)
            if stop.wait(max(0.01, due - clock_monotonic())):
                return

    def pull_oppositions(self) -> bool:
        try:
            changed, seq = self.cache.sync_oppositions(self.client)
        except Exception as e:  # a round never kills the task
            self._failed("opposition", e)
            return False
        self._ok("opposition", seq=seq)
        if changed:
            log.info("opposition list pulled", extra={"means_changed": changed, "seq": seq})
        return True

    def refresh(self, stop: threading.Event | None = None) -> bool:
        """One round of refreshing old families; True when it completed. A round stopped by
        an unreachable service is owed: run again as soon as an opposition pull succeeds."""
        self._refresh_owed = False
        try:
            report = self.cache.sync(older_than=self.older_than, limit=self.max_families,
                                     oppositions=False, client=self.client, stop=stop,
                                     claim_for=max(1, int(self.refresh_every)))
        except Exception as e:
            self._failed("refresh", e)
            return False
        self.last_report = report
        if report.failed:
            if report.failed != "stopped":
                self._refresh_owed = report.unavailable
                error = ServiceUnavailable if report.unavailable else ServiceError
                self._failed("refresh", error(report.failed), families=report.answered)
            return False
        self._ok("refresh", families=report.answered, asked=report.families)
        if report.families:
            level = logging.WARNING if report.rejected else logging.INFO
            log.log(level, "cached families refreshed", extra={
                "families": report.families, "unknown": report.unknown,
                "rejected": report.rejected, "rows_changed": report.rows_changed,
                "s": round(report.seconds, 3)})
        return True

    def close(self) -> None:
        self.client.close()

    # --- outcome, logged once per streak -----------------------------------------------------

    def _ok(self, kind: str, *, seq: int | None = None, families: int = 0,
            asked: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.rights_sync(kind, "ok", self._clock(), families=families, seq=seq)
        if asked and self._trouble is not None:  # a request went through
            log.info("rights service reachable again for the background sync", extra={
                "was": self._trouble,
                "down_s": round(clock_monotonic() - self._trouble_since, 1)})
            self._trouble = None
        if asked and self.metrics is not None:
            self.metrics.rights_service(True)

    def _failed(self, kind: str, e: BaseException, *, families: int = 0) -> None:
        if isinstance(e, ServiceUnavailable):
            trouble, why = "unavailable", str(e)
        elif isinstance(e, ServiceError):
            trouble, why = "rejected", str(e)
        else:
            trouble, why = "error", type(e).__name__
        if self.metrics is not None:
            self.metrics.rights_sync(kind, trouble, self._clock(), families=families)
            if trouble == "unavailable":
                self.metrics.rights_service(False)
        if trouble != self._trouble:
            self._trouble, self._trouble_since = trouble, clock_monotonic()
            level = logging.ERROR if trouble == "error" else logging.WARNING
            log.log(level, "background rights sync failed; next round as planned", extra={
                "round": kind, "result": trouble, "why": why,
                "breaker": self.client.breaker.state.value},
                exc_info=trouble == "error")
        else:
            log.debug("background rights sync still failing",
                      extra={"round": kind, "result": trouble})
