"""Billing: care sheets, numbered and chained lots, exactly-once export (docs/billing.md)."""

from .errors import BillingError, FieldError, IntegrityError, JournalError, StorageFull
from .export import Exporter, ExportReport
from .journal import Journal
from .model import (
    CareSheet,
    Dispensation,
    LineInput,
    Lot,
    Nature,
    PatientRef,
    SheetLine,
    TiersPayant,
    Transaction,
)
from .pricing import build_care_sheet, persons
from .verify import VerifyReport, verify

__all__ = [
    "BillingError",
    "CareSheet",
    "Dispensation",
    "ExportReport",
    "Exporter",
    "FieldError",
    "IntegrityError",
    "Journal",
    "JournalError",
    "LineInput",
    "Lot",
    "Nature",
    "PatientRef",
    "SheetLine",
    "StorageFull",
    "TiersPayant",
    "Transaction",
    "VerifyReport",
    "build_care_sheet",
    "persons",
    "verify",
]
