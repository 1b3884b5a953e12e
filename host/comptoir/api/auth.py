"""The API's bearer token: one random secret in a file only the daemon's user can read."""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

TOKEN_BYTES = 32  # token_urlsafe(32): 43 characters, 256 bits


class TokenFileError(RuntimeError):
    pass


def load_or_create_token(path: str | Path) -> str:
    """Read the token, creating it with mode 0600 on first start (never overwritten).
    Refuses a token file that others can read: the token opens every patient's transaction."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenFileError(f"token file {path} is readable by others (chmod 600 it)") \
                from None
        token = path.read_text(encoding="ascii").strip()
        if len(token) < 32:
            raise TokenFileError(f"token file {path} holds no usable token") from None
        return token
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    return token


def authorized(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, the scheme in any case (RFC 9110 §11.1), the token
    compared in constant time."""
    scheme, _, given = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), token.encode())
