"""What the API (and the counter screen) refuse a request with, and how they read a JSON body:
one document, no key twice in an object, nesting bounded."""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 32  # nesting of a request body; real bodies are 3 deep


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for b in raw:
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif b in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_json(raw: bytes) -> Any:
    """A request body: one JSON document, no key twice in an object (which one would count?),
    at most MAX_JSON_DEPTH deep. ApiError 422 otherwise."""
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _depth(raw) > MAX_JSON_DEPTH:
        raise ApiError(422, "invalid_json", f"nested deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as e:
        raise ApiError(422, "invalid_json", f"key {str(e)[:40]!r} appears twice") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(422, "invalid_json", "the body is not a JSON document") from None
