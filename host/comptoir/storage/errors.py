"""Errors of the storage layer. Messages name files, never personal data."""

from __future__ import annotations


class StorageError(Exception):
    pass


class KeyFileError(StorageError):
    """A key file is missing, the wrong size, not ours, or readable by others."""
