"""Signing in to the counter screen without the API token.

`comptoir screen`, run as the daemon's user, drops a one-time secret in a directory only that
user can write (DATA_DIR/screen-links, 0700) and prints a link carrying it; the page's server
redeems the secret once (a rename claims it: two tabs opening the same link get one session),
within `link_ttl`. A session is a random id in an HttpOnly, SameSite=Strict cookie and a CSRF
token that every POST carries in a header; it ends after `ttl` on the daemon's clock
(comptoir.clock), whatever the page does."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from comptoir import clock

SECRET_BYTES = 32  # token_urlsafe(32): 43 characters
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_SESSIONS = 64  # a pharmacy has a few counters; the oldest session goes first
CLAIM_LEFTOVER_S = 60.0  # a claimed link file older than this was left by a crash


def is_secret(value: object) -> bool:
    """The shape of a link secret, a session id or a CSRF token."""
    return isinstance(value, str) and _SECRET.fullmatch(value) is not None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SignInLinks:
    def __init__(self, directory: Path, ttl: float = 300.0) -> None:
        self.directory = Path(directory)
        self.ttl = ttl

    def issue(self) -> str:
        """A new one-time secret, good for `ttl` seconds."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._drop_expired()
        secret = secrets.token_urlsafe(SECRET_BYTES)
        fd = os.open(self.directory / _digest(secret), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(f"{clock.now() + self.ttl:.3f}\n")
        return secret

    def redeem(self, secret: object) -> bool:
        """True once for a secret issued less than `ttl` ago; False for anything else."""
        if not is_secret(secret):
            return False
        assert isinstance(secret, str)
        path = self.directory / _digest(secret)
        claimed = path.with_name(path.name + f".used-{secrets.token_hex(4)}")
        try:
            os.rename(path, claimed)  # atomic: only one request claims it
        except OSError:
            return False
        try:
            expires = float(claimed.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            expires = 0.0
        finally:
            with contextlib.suppress(OSError):
                claimed.unlink()
        return clock.now() <= expires

    def _drop_expired(self) -> None:
        now = clock.now()
        for f in self.directory.iterdir():
            try:
                if "." in f.name:  # claimed by a redeem: its own to remove, unless left over
                    if time.time() - f.stat().st_mtime < CLAIM_LEFTOVER_S:
                        continue
                    expires = 0.0
                else:
                    expires = float(f.read_text(encoding="ascii").strip())
            except (OSError, ValueError):
                expires = 0.0
            if expires < now:
                with contextlib.suppress(OSError):
                    f.unlink()


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    csrf: str
    created_at: float
    expires_at: float


class Sessions:
    def __init__(self, ttl: float = 12 * 3600.0, max_sessions: int = MAX_SESSIONS) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._by_digest: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self) -> Session:
        now = clock.now()
        s = Session(secrets.token_urlsafe(SECRET_BYTES), secrets.token_urlsafe(SECRET_BYTES),
                    now, now + self.ttl)
        with self._lock:
            self._expire(now)
            while len(self._by_digest) >= self.max_sessions:
                oldest = min(self._by_digest, key=lambda d: self._by_digest[d].created_at)
                del self._by_digest[oldest]
            self._by_digest[_digest(s.sid)] = s
        return s

    def get(self, sid: object) -> Session | None:
        """The live session with this id (looked up by its digest), or None."""
        if not is_secret(sid):
            return None
        assert isinstance(sid, str)
        with self._lock:
            self._expire(clock.now())
            return self._by_digest.get(_digest(sid))

    def alive(self, session: Session) -> bool:
        return clock.now() < session.expires_at and self.get(session.sid) is not None

    @staticmethod
    def csrf_ok(session: Session, token: object) -> bool:
        if not is_secret(token):
            return False
        assert isinstance(token, str)
        return hmac.compare_digest(token.encode(), session.csrf.encode())

    def close(self, sid: str) -> None:
        with self._lock:
            self._by_digest.pop(_digest(sid), None)

    def _expire(self, now: float) -> None:
        for d in [d for d, s in self._by_digest.items() if s.expires_at <= now]:
            del self._by_digest[d]
