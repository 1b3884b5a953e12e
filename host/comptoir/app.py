"""The daemon assembled from its configuration, for `comptoir run` and the twin alike: the
transaction store with its billing journal and the offline rights cache, metrics, the event
feed and the HTTP API, subscribed to the daemon's events; and the background tasks (expiry and
retention of transactions, lots closed by age, with a rights service the opposition list and
the refresh of old cached families, the trust refresh), each a `comptoir.tasks.Task`.
One call to start (`start_app`), one to stop (`App.stop`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from comptoir.config import Config
from comptoir.metrics import Metrics
from comptoir.opener import TransactionOpener
from comptoir.rights import (
    CircuitBreaker,
    ClientPolicy,
    RightsClient,
    StalenessPolicy,
)
from comptoir.rights.sync_task import RightsSync
from comptoir.stores import open_biller, open_rights_cache, open_transactions
from comptoir.tasks import Task, ThreadTask, periodic
from comptoir.tokens.refresh import TrustRefresher
from comptoir.transactions import JournalBiller, RightsDesk, TransactionStore

from .api.auth import load_or_create_token
from .api.server import ApiServer
from .http.feed import EventFeed, EventIds

log = logging.getLogger("comptoir.api")  # the logger these messages always had

PURGE_EVERY_S = 60.0
LOTS_EVERY_S = 60.0  # at most; more often when billing.lot_max_age_s is short


@dataclass
class App:
    store: TransactionStore
    biller: JournalBiller
    metrics: Metrics
    feed: EventFeed
    api: ApiServer | None
    rights: RightsDesk | None = None
    tasks: list[Task] = field(default_factory=list)
    rights_sync: RightsSync | None = None

    def health(self) -> dict[str, str]:
        return {t.name: t.health() for t in self.tasks}

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
        for t in self.tasks:  # all told at once, then each finishes what it is doing
            t.stop(wait=False)
        for t in self.tasks:
            t.stop()
        if self.rights_sync is not None:
            self.rights_sync.close()
        self.feed.close()
        if self.rights is not None:
            self.rights.close()
        self.store.close()
        self.biller.close()


def rights_client(cfg: Config, breaker: CircuitBreaker | None = None) -> RightsClient:
    """A client of the rights service as configured; `breaker`: share another client's."""
    c = cfg.cache
    return RightsClient(
        c.service_url,
        policy=ClientPolicy(timeout=c.service_timeout_ms / 1000, attempts=c.service_attempts,
                            backoff=0.1, backoff_max=0.5, retry_after_max=1.0),
        breaker=breaker or CircuitBreaker(threshold=c.breaker_threshold,
                                          cool_down=float(c.breaker_cool_down_s),
                                          max_cool_down=max(300.0, float(c.breaker_cool_down_s))))


def open_rights(cfg: Config) -> RightsDesk:
    """The rights cache (rebuilt if unusable: reported in the log) and, when configured, the
    client of the rights service with its circuit breaker."""
    c = cfg.cache
    client = rights_client(cfg) if c.service_url else None
    cache = open_rights_cache(  # this PC's file, or PostgreSQL with storage.url
        cfg,
        policy=StalenessPolicy(fresh_for=c.fresh_for_s, offline_max_age=c.offline_max_age_s,
                               credential_max_age=c.credential_max_age_s, timezone=c.timezone),
        client=client)
    for r in cache.rebuilds:
        log.error("rights cache was rebuilt at start", extra={"why": r.reason,
                                                              "salvaged_rows": r.salvaged})
    return RightsDesk(cache, dispense_wait=c.dispense_wait_ms / 1000)


def lots_every(cfg: Config) -> float:
    return min(LOTS_EVERY_S, max(0.5, cfg.billing.lot_max_age_s / 4))


def start_app(cfg: Config, daemon: Any, trust: TrustRefresher | None = None,
              presentations: Any = None) -> App:
    """`daemon`: a comptoir.daemon.Daemon (subscribe, status), not yet started or running.
    `trust`: the refresher of the verifier's trust material, run as a periodic task, its
    alerts on the event stream, its list ages in the metrics and /v1/health.
    `presentations`: the daemon's comptoir.presentations.PresentationServices; its QR pipeline
    and NFC service then open each verified presentation's transaction before its verdict is
    sent (TransactionOpener.admit: `error` on the board when it could not be stored)."""
    for d in (cfg.paths.data_dir, cfg.paths.keys_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    biller = open_biller(cfg)  # this PC's SQLite files, or PostgreSQL with storage.url
    rights = open_rights(cfg) if cfg.cache.enabled else None
    store = open_transactions(cfg, biller, rights)
    metrics = Metrics(lambda: {p: s.state for p, s in list(daemon.status.items())})
    feed = EventFeed(metrics, EventIds(cfg.paths.data_dir / "event-ids"))
    opener = TransactionOpener(store, feed, metrics)
    if presentations is not None:
        presentations.qr.admit = opener.admit
        presentations.nfc.admit = opener.admit
    for tx_id in store.recover_billed():  # a crash between the journal and this database
        log.warning("care sheet recovered from the billing journal at start",
                    extra={"transaction": tx_id})
    daemon.subscribe(metrics.on_event)
    daemon.subscribe(opener.on_event)
    daemon.subscribe(feed.on_event)
    if trust is not None:
        trust.set_publisher(feed.publish)
        metrics.sources.append(trust.metric_lines)
    api = None
    if cfg.api.enabled:
        api = ApiServer(load_or_create_token(cfg.api.token_file), store, feed,
                        host=cfg.api.host, port=cfg.api.port,
                        boards=lambda: dict(daemon.status), metrics=metrics,
                        metrics_auth=cfg.api.metrics_auth,
                        trust=None if trust is None else trust.report).start()

    def purge() -> None:  # expiry and retention, off the daemon's event thread
        try:
            store.purge()
        except Exception:
            log.exception("transactions purge failed")

    def close_lots() -> None:  # lots closed by age; once at start (the PC was off), then often
        try:
            for lot in biller.close_due():
                log.info("lot closed by age", extra={"finess": lot.finess, "lot": lot.seq,
                                                     "count": lot.count})
        except Exception:
            log.exception("closing lots by age failed")

    tasks: list[Task] = [
        periodic("transactions purge", PURGE_EVERY_S, purge, at_start=False),
        periodic("billing lots by age", lots_every(cfg), close_lots, at_start=True)]
    sync = None
    if rights is not None and rights.cache.client is not None:
        # Its own connection (a batch never holds up the counter's look-ups), the same breaker.
        c = cfg.cache
        sync = RightsSync(rights.cache, rights_client(cfg, rights.cache.client.breaker),
                          opposition_every=c.opposition_every_s, refresh_every=c.refresh_every_s,
                          older_than=c.refresh_older_than_s, max_families=c.refresh_max_families,
                          metrics=metrics)
        tasks.append(ThreadTask("rights sync", sync.run))
    if trust is not None:
        tasks.append(ThreadTask("trust refresh", trust.run))
    for t in tasks:
        t.start()
    return App(store, biller, metrics, feed, api, rights, tasks, sync)
