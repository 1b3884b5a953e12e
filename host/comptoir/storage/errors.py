"""Errors of the storage layer. Messages name files, never personal data."""

from __future__ import annotations


class StorageError(Exception):
    pass


class Unreachable(StorageError):
    """The shared database server could not be reached, or the connection to it was lost
    (the back-office PC off, the LAN down). What was under way is not acknowledged: a write
    in progress was rolled back by the server, or its commit's outcome is unknown; the same
    request, sent again once the server is back, finds it done or does it."""


class KeyFileError(StorageError):
    """A key file is missing, the wrong size, not ours, or readable by others."""
