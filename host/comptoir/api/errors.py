"""The HTTP status of each domain error code lives in comptoir.http.errors (the counter screen
answers with it too); this name is kept for the API's readers."""

from comptoir.http.errors import STATUS_OF_CODE, status_of

__all__ = ["STATUS_OF_CODE", "status_of"]
