"""What can go wrong with a transaction. Each error carries a stable code (the API and the
counter screen answer with it; `comptoir.http.errors` gives each its HTTP status), never a
status of its own: the domain does not know it is served over HTTP."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from comptoir.storage import Unreachable


class TransactionError(Exception):
    code = "transaction_error"


class NotFound(TransactionError):
    code = "unknown_transaction"


class WrongState(TransactionError):
    code = "wrong_state"


class PersonMismatch(TransactionError):
    code = "person_mismatch"


class InvalidPerson(TransactionError):
    code = "invalid_person"


class InvalidDispensation(TransactionError):
    code = "invalid_dispensation"

    def __init__(self, detail: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.fields = fields


class RightsRefused(TransactionError):
    """The chosen person's rights forbid this care sheet (docs/rights-cache.md)."""


class RightsClosed(RightsRefused):
    code = "rights_closed"


class MeansBlocked(RightsRefused):
    code = "means_blocked"


class RightsUnconfirmed(RightsRefused):
    code = "rights_unconfirmed"


class Unavailable(TransactionError):
    """The transaction's personal data is gone (retention) or does not open (wrong key)."""

    code = "data_unavailable"


class NoRoom(TransactionError):
    """A database could not be written (disk full, or the write failed): nothing of the
    request was kept, or (dispense) the care sheet was and the same request finishes it."""

    code = "storage_full"


class StorageUnavailable(TransactionError):
    """The shared database (PostgreSQL, `storage.url`) could not be reached: nothing of the
    request was acknowledged; sent again once the server is back, it is done once (a care
    sheet the journal already recorded is found, not recorded twice)."""

    code = "storage_unavailable"


class SchemaTooNew(RuntimeError):
    """The transactions database was migrated by a newer Comptoir."""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def reachable(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """The shared database unreachable (PostgreSQL) during a request: the caller gets the
    transactions' own error (StorageUnavailable), never the driver's."""
    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except Unreachable as e:
            raise StorageUnavailable(
                f"{e}: nothing was acknowledged; once the server is back, send the same "
                "request again (a care sheet already recorded is not recorded twice)") from e
    return wrapper
