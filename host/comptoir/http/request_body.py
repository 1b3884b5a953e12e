"""A request's body, read the same way by the API and the counter screen: a plain
`Content-Length` (a body sent with `Transfer-Encoding` is refused, as is a length that is not
one decimal number, or given twice: "-1" once meant "read until the client closes"), at most
`limit` bytes (a larger one is refused unread), read whole; a body that stops coming (the
connection's idle timeout) or ends short is refused and nothing is carried out. Every refusal
closes the connection: what is left of the body must not be taken for the next request.

Each front refuses in its own words and with its own exception: `messages` gives the text for
each case (`length_required`, `bad_length`, `too_large`, `timeout`, `short`) and `refuse`
builds the exception from (status, code, text)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler

# case -> (HTTP status, error code)
CASES: dict[str, tuple[int, str]] = {
    "length_required": (411, "length_required"),
    "bad_length": (400, "bad_request"),
    "too_large": (413, "too_large"),
    "timeout": (408, "timeout"),
    "short": (400, "bad_request"),
}


def read_body(handler: BaseHTTPRequestHandler, limit: int, messages: Mapping[str, str],
              refuse: Callable[[int, str, str], Exception]) -> bytes:
    def refused(case: str) -> Exception:
        handler.close_connection = True
        status, code = CASES[case]
        return refuse(status, code, messages[case])

    if handler.headers.get("Transfer-Encoding"):
        raise refused("length_required")
    text = (handler.headers.get("Content-Length") or "0").strip()
    if not text.isdigit() or len(handler.headers.get_all("Content-Length") or []) > 1:
        raise refused("bad_length")
    length = int(text)
    if length > limit:
        raise refused("too_large")
    try:
        raw = handler.rfile.read(length)
    except TimeoutError:
        raise refused("timeout") from None
    if len(raw) < length:
        # The client left (or stalled past the idle timeout) before sending its body.
        raise refused("short")
    return bytes(raw)
