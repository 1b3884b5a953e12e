"""Everything `comptoir run` needs around the daemon, from the configuration: the transaction
store with its billing journal and the offline rights cache, metrics, the event feed and the
HTTP server, subscribed to the daemon's events; and the periodic work: expiry and retention of
transactions, lots closed by age, and (with a rights service) the opposition list and the
refresh of old cached families. One call to start, one to stop."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from comptoir.config import Config
from comptoir.metrics import Metrics
from comptoir.rights import (
    CircuitBreaker,
    ClientPolicy,
    RightsCache,
    RightsClient,
    StalenessPolicy,
)
from comptoir.rights.sync_task import RightsSync
from comptoir.tokens.refresh import TrustRefresher
from comptoir.transactions import JournalBiller, RightsDesk, TransactionStore

from .auth import load_or_create_token
from .feed import EventFeed, EventIds
from .server import ApiServer

log = logging.getLogger("comptoir.api")

PURGE_EVERY_S = 60.0
LOTS_EVERY_S = 60.0  # at most; more often when billing.lot_max_age_s is short


@dataclass
class Services:
    store: TransactionStore
    biller: JournalBiller
    metrics: Metrics
    feed: EventFeed
    api: ApiServer | None
    _stop: threading.Event
    rights: RightsDesk | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    rights_sync: RightsSync | None = None

    def stop(self) -> None:
        self._stop.set()
        if self.api is not None:
            self.api.stop()
        for t in self.threads:  # the periodic tasks finish what they are doing
            t.join(timeout=10)
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
    cache = RightsCache.open(
        cfg.rights_db, cfg.rights_key,
        policy=StalenessPolicy(fresh_for=c.fresh_for_s, offline_max_age=c.offline_max_age_s,
                               credential_max_age=c.credential_max_age_s, timezone=c.timezone),
        client=client)
    for r in cache.rebuilds:
        log.error("rights cache was rebuilt at start", extra={"why": r.reason,
                                                              "salvaged_rows": r.salvaged})
    return RightsDesk(cache, dispense_wait=c.dispense_wait_ms / 1000)


def lots_every(cfg: Config) -> float:
    return min(LOTS_EVERY_S, max(0.5, cfg.billing.lot_max_age_s / 4))


def start_services(cfg: Config, daemon: Any, trust: TrustRefresher | None = None) -> Services:
    """`daemon`: a comptoir.daemon.Daemon (subscribe, status), not yet started or running.
    `trust`: the refresher of the verifier's trust material, run as a periodic task, its
    alerts on the event stream, its list ages in the metrics and /v1/health."""
    for d in (cfg.paths.data_dir, cfg.paths.keys_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    biller = JournalBiller(cfg.billing_db, key=cfg.billing_key, lot_size=cfg.billing.lot_size,
                           lot_max_age=cfg.billing.lot_max_age_s)
    rights = open_rights(cfg) if cfg.cache.enabled else None
    store = TransactionStore(cfg.transactions_db, cfg.transactions_key, biller,
                             open_ttl_s=cfg.transactions.open_ttl_s,
                             retention_s=cfg.transactions.retention_s, rights=rights)
    metrics = Metrics(lambda: {p: s.state for p, s in list(daemon.status.items())})
    feed = EventFeed(store, metrics, EventIds(cfg.paths.data_dir / "event-ids"))
    for tx_id in store.recover_billed():  # a crash between the journal and this database
        log.warning("care sheet recovered from the billing journal at start",
                    extra={"transaction": tx_id})
    daemon.subscribe(metrics.on_event)
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
    stop = threading.Event()

    def purge() -> None:  # expiry and retention, off the daemon's event thread
        while not stop.wait(PURGE_EVERY_S):
            try:
                store.purge()
            except Exception:
                log.exception("transactions purge failed")

    def close_lots() -> None:  # lots closed by age; once at start (the PC was off), then often
        every = lots_every(cfg)
        while True:
            try:
                for lot in biller.close_due():
                    log.info("lot closed by age", extra={"finess": lot.finess, "lot": lot.seq,
                                                         "count": lot.count})
            except Exception:
                log.exception("closing lots by age failed")
            if stop.wait(every):
                return

    threads = [threading.Thread(target=purge, name="transactions purge", daemon=True),
               threading.Thread(target=close_lots, name="billing lots by age", daemon=True)]
    sync = None
    if rights is not None and rights.cache.client is not None:
        # Its own connection (a batch never holds up the counter's look-ups), the same breaker.
        c = cfg.cache
        sync = RightsSync(rights.cache, rights_client(cfg, rights.cache.client.breaker),
                          opposition_every=c.opposition_every_s, refresh_every=c.refresh_every_s,
                          older_than=c.refresh_older_than_s, max_families=c.refresh_max_families,
                          metrics=metrics)
        threads.append(threading.Thread(target=sync.run, args=(stop,), name="rights sync",
                                        daemon=True))
    if trust is not None:
        threads.append(threading.Thread(target=trust.run, args=(stop,), name="trust refresh",
                                        daemon=True))
    for t in threads:
        t.start()
    return Services(store, biller, metrics, feed, api, stop, rights, threads, sync)
