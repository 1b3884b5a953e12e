"""Where the daemon's shared stores live: this PC's SQLite files, or, with `storage.url`, the
PostgreSQL server every counter of the pharmacy shares (issue 17; the `[postgres]` extra).
The verifier's state is chosen the same way in `presentations.load_verifier`. The rights cache
too: shared, a family asked by one counter is fresh at the others."""

from __future__ import annotations

from typing import Any

from comptoir.config import Config
from comptoir.rights import RightsCache
from comptoir.transactions import JournalBiller, RightsDesk, TransactionStore


def open_biller(cfg: Config) -> JournalBiller:
    options: dict[str, Any] = {"lot_size": cfg.billing.lot_size,
                               "lot_max_age": cfg.billing.lot_max_age_s}
    if not cfg.storage.url:
        return JournalBiller(cfg.billing_db, key=cfg.billing_key, **options)
    from comptoir.billing.journal_pg import open_journal

    url, password_file = cfg.storage.url, cfg.storage.password_file
    return JournalBiller(cfg.billing_db, opener=lambda: open_journal(
        url, key=cfg.billing_key, password_file=password_file, **options))


def open_transactions(cfg: Config, biller: JournalBiller,
                      rights: RightsDesk | None) -> TransactionStore:
    t = cfg.transactions
    if not cfg.storage.url:
        return TransactionStore(cfg.transactions_db, cfg.transactions_key, biller,
                                open_ttl_s=t.open_ttl_s, retention_s=t.retention_s,
                                rights=rights)
    from comptoir.transactions.store_pg import open_store

    return open_store(cfg.storage.url, cfg.transactions_key, biller,
                      password_file=cfg.storage.password_file, open_ttl_s=t.open_ttl_s,
                      retention_s=t.retention_s, rights=rights)


def open_rights_cache(cfg: Config, **options: Any) -> RightsCache:
    """The rights cache: this PC's file (rebuilt if unusable), or the shared one on the
    server. `options` go to RightsCache.open (policy, client)."""
    return RightsCache.open(cfg.rights_db, cfg.rights_key, url=cfg.storage.url,
                            password_file=cfg.storage.password_file, **options)
