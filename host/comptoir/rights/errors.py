"""Errors of the rights cache. Messages never carry personal data."""

from __future__ import annotations

from comptoir.storage import KeyFileError

__all__ = [
    "CacheCorrupt", "CacheFull", "KeyFileError", "RightsError", "RowCorrupt", "SchemaTooNew",
    "ServiceError", "ServiceUnavailable", "WrongKey",
]


class RightsError(Exception):
    pass


class CacheCorrupt(RightsError):
    """The database failed a check (integrity, header, a row's authentication): not to be used.
    `RightsCache.open` quarantines the file and rebuilds from the sources."""


class RowCorrupt(CacheCorrupt):
    """One row fails authentication (or names someone else than its keys) under the right key:
    on PostgreSQL, the rows that do are removed from the shared database (`rebuild.repair`)."""


class WrongKey(CacheCorrupt):
    """The database was written with another key file: its rows cannot be read."""


class SchemaTooNew(RightsError):
    """The database was migrated by a newer Comptoir; refusing to downgrade it."""


class CacheFull(RightsError):
    """The disk (or the configured page limit) is full: the write was rolled back, nothing
    committed before it is lost."""


class ServiceUnavailable(RightsError):
    """The rights service did not answer (down, timing out, circuit open)."""


class ServiceError(RightsError):
    """The rights service answered something unusable (malformed, or about someone else)."""
