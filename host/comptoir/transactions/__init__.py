"""Transactions: one accepted presentation, the one person it serves, and its care sheet.

A transaction is created for each verified presentation. Its people are the credential's
insured person (person 0) and beneficiaries (1..n, in credential order); exactly one of them is
chosen, once. Every later step is built from the transaction's own chosen person: a care sheet
request only carries the person index as a check, and the patient the journal bills is taken
from the transaction, never from the request. So no request can bill one transaction's patient
under another's, or another family member under this one.

The package: `model` (what readers get), `errors` (codes, no HTTP), `store` (the SQLite store;
`recovery` its expiry, retention and care sheets found in the journal),
`sealed` (the sealed plaintext), `schema` (its migration steps), `billing_link` (the journal
on its own thread), `policy` (when rights allow a care sheet), `rights_desk` (each person's
rights from the offline cache, and the rights service asked in the background).
"""

from __future__ import annotations

from .billing_link import Biller, JournalBiller
from .errors import (
    InvalidDispensation,
    InvalidPerson,
    MeansBlocked,
    NoRoom,
    NotFound,
    PersonMismatch,
    RightsClosed,
    RightsRefused,
    RightsUnconfirmed,
    SchemaTooNew,
    StorageUnavailable,
    TransactionError,
    Unavailable,
    WrongState,
)
from .model import (
    DispenseRequest,
    Person,
    PersonRights,
    SheetRef,
    State,
    TransactionView,
    people_of,
)
from .rights_desk import RightsDesk, ServiceState
from .store import TransactionStore

__all__ = [
    "Biller",
    "DispenseRequest",
    "InvalidDispensation",
    "InvalidPerson",
    "JournalBiller",
    "MeansBlocked",
    "NoRoom",
    "NotFound",
    "Person",
    "PersonMismatch",
    "PersonRights",
    "RightsClosed",
    "RightsDesk",
    "RightsRefused",
    "RightsUnconfirmed",
    "SchemaTooNew",
    "ServiceState",
    "SheetRef",
    "State",
    "StorageUnavailable",
    "TransactionError",
    "TransactionStore",
    "TransactionView",
    "Unavailable",
    "WrongState",
    "people_of",
]
