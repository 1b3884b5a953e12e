"""The Cookie header, read strictly: what the browser sends is outside input."""

from __future__ import annotations

COOKIE = "comptoir_ecran"
MAX_HEADER = 4096


def parse(header: object) -> dict[str, str]:
    """name -> value of a Cookie header (RFC 6265 §5.4: `name=value` pairs joined by "; ").
    A pair without `=`, an empty name or a name given twice with different values is dropped
    (which one would be ours?); a header above MAX_HEADER is ignored whole."""
    if not isinstance(header, str) or len(header) > MAX_HEADER:
        return {}
    out: dict[str, str] = {}
    twice: set[str] = set()
    for part in header.split(";"):
        name, eq, value = part.strip().partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name:
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name in out and out[name] != value:
            twice.add(name)
        out[name] = value
    for name in twice:
        del out[name]
    return out


def session_id(header: object) -> str | None:
    return parse(header).get(COOKIE)


def set_session(sid: str, max_age: int) -> str:
    """The Set-Cookie value: never readable by script, never sent by another site."""
    return f"{COOKIE}={sid}; Path=/; Max-Age={max(0, max_age)}; HttpOnly; SameSite=Strict"


def clear_session() -> str:
    return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
