"""The HTTP status of each domain error code: the one table where a transaction's refusal
becomes a status (the domain errors carry codes only). The counter screen answers with it too."""

from __future__ import annotations

from comptoir.transactions import TransactionError

STATUS_OF_CODE: dict[str, int] = {
    "transaction_error": 400,
    "unknown_transaction": 404,
    "wrong_state": 409,
    "person_mismatch": 409,
    "invalid_person": 422,
    "invalid_dispensation": 422,
    "rights_closed": 409,
    "means_blocked": 409,
    "rights_unconfirmed": 409,
    "data_unavailable": 410,
    "storage_full": 507,
    "storage_unavailable": 503,  # the shared database (PostgreSQL) unreachable: try again
}


def status_of(e: TransactionError) -> int:
    return STATUS_OF_CODE.get(e.code, 400)
