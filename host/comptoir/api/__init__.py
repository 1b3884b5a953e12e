"""The local HTTP API for the pharmacy's dispensing software (docs/api.md)."""

from comptoir.http.feed import EventFeed

from .auth import load_or_create_token
from .server import ApiServer

__all__ = ["ApiServer", "EventFeed", "load_or_create_token"]
