"""Billing errors. Every refusal names the field it is about, so the counter can show it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str  # a path such as "lines[2].cip13" or "pharmacy.finess"
    reason: str  # never personal data

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class BillingError(ValueError):
    """A care sheet refused: one or more fields break a rule. All the broken rules are listed."""

    def __init__(self, errors: list[FieldError] | tuple[FieldError, ...]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(e.field for e in self.errors)


class JournalError(RuntimeError):
    """The journal cannot do what was asked (e.g. a transaction billed twice differently)."""


class StorageFull(JournalError):
    """A write could not be made durable: the disk is full (or a file size limit is reached),
    or the device failed the write. Nothing of the refused change was kept; the same request
    succeeds (once) when there is room again."""


class IntegrityError(RuntimeError):
    """verify found the journal or an exported file not as it was written."""
