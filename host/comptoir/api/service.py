"""Everything `comptoir run` needs around the daemon, from the configuration: the transaction
store and its billing journal, metrics, the event feed and the HTTP server, subscribed to the
daemon's events. One call to start, one to stop."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from comptoir.config import Config
from comptoir.metrics import Metrics
from comptoir.transactions import JournalBiller, TransactionStore

from .auth import load_or_create_token
from .feed import EventFeed
from .server import ApiServer

PURGE_EVERY_S = 60.0


@dataclass
class Services:
    store: TransactionStore
    biller: JournalBiller
    metrics: Metrics
    feed: EventFeed
    api: ApiServer | None
    _stop: threading.Event

    def stop(self) -> None:
        self._stop.set()
        if self.api is not None:
            self.api.stop()
        self.feed.close()
        self.store.close()
        self.biller.close()


def start_services(cfg: Config, daemon: Any) -> Services:
    """`daemon`: a comptoir.daemon.Daemon (subscribe, status), not yet started or running."""
    for d in (cfg.paths.data_dir, cfg.paths.keys_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    biller = JournalBiller(cfg.billing_db, lot_size=cfg.billing.lot_size,
                           lot_max_age=cfg.billing.lot_max_age_s)
    store = TransactionStore(cfg.transactions_db, cfg.transactions_key, biller,
                             open_ttl_s=cfg.transactions.open_ttl_s,
                             retention_s=cfg.transactions.retention_s)
    metrics = Metrics(lambda: {p: s.state for p, s in list(daemon.status.items())})
    feed = EventFeed(store, metrics)
    daemon.subscribe(metrics.on_event)
    daemon.subscribe(feed.on_event)
    api = None
    if cfg.api.enabled:
        api = ApiServer(load_or_create_token(cfg.api.token_file), store, feed,
                        host=cfg.api.host, port=cfg.api.port,
                        boards=lambda: dict(daemon.status), metrics=metrics,
                        metrics_auth=cfg.api.metrics_auth).start()
    stop = threading.Event()

    def purge() -> None:  # expiry and retention, off the daemon's event thread
        while not stop.wait(PURGE_EVERY_S):
            store.purge()

    threading.Thread(target=purge, name="transactions purge", daemon=True).start()
    return Services(store, biller, metrics, feed, api, stop)
