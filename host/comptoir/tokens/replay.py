"""What the verifier must remember across daemon restarts, in one SQLite file:

- seen QR presentations, keyed by (credential id, presentation id = the cti nonce), until they
  are too old to be accepted anyway. Never keyed by signature bytes: (r, n-s) verifies too.
- the last counter accepted per credential (it must increase);
- the highest activation generation seen per insured person, so that an old phone is refused
  even offline once a newer one was seen here. Persons are keyed by HMAC(pepper, NIR): the file
  holds no NIR in clear, and without the pepper a key cannot be brute-forced over the NIR space.

All checks and updates for one presentation happen in one IMMEDIATE transaction, so two boards
verifying the same token at once cannot both succeed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import threading
from pathlib import Path

from .reasons import Reason

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (key BLOB PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    credential BLOB PRIMARY KEY, counter INTEGER NOT NULL, expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activations (
    person BLOB PRIMARY KEY, generation INTEGER NOT NULL
) WITHOUT ROWID;
"""
_PURGE_EVERY = 256


def load_pepper(path: str | Path) -> bytes:
    """Read the installation's pepper, creating it (32 random bytes, mode 0600) if missing."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pepper = os.urandom(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pepper)
        return pepper


def replay_key(credential_id: bytes, presentation_id: bytes) -> bytes:
    # Length-prefixed so that two different (id, id) pairs never concatenate to the same key.
    return bytes((len(credential_id),)) + credential_id + presentation_id


class VerifierState:
    def __init__(self, path: str | Path, *, pepper: bytes, durable: bool = False) -> None:
        """`durable=False` (synchronous=NORMAL in WAL mode) survives a daemon crash; True also
        survives a power cut, at the cost of an fsync per accepted presentation."""
        if len(pepper) < 16:
            raise ValueError("pepper too short")
        self._pepper = pepper
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        self._commits = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def person_key(self, nir: str) -> bytes:
        return hmac.new(self._pepper, nir.encode(), hashlib.sha256).digest()[:16]

    def highest_generation(self, nir: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT generation FROM activations WHERE person = ?", (self.person_key(nir),)
            ).fetchone()
        return -1 if row is None else row[0]

    def commit(
        self,
        *,
        now: int,
        credential_id: bytes,
        credential_expires: int,
        counter: int,
        nir: str,
        generation: int,
        replay: tuple[bytes, int] | None,
    ) -> Reason | None:
        """Check and record one presentation atomically. `replay` is (key, expires) for QR.
        Returns the refusal reason, or None when recorded."""
        person = self.person_key(nir)
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                reason = self._check_and_record(
                    db, now, credential_id, credential_expires, counter, person, generation, replay
                )
                db.execute("ROLLBACK" if reason else "COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._commits += 1
            if self._commits % _PURGE_EVERY == 0:
                self._purge(now)
        return reason

    @staticmethod
    def _check_and_record(
        db: sqlite3.Connection,
        now: int,
        credential_id: bytes,
        credential_expires: int,
        counter: int,
        person: bytes,
        generation: int,
        replay: tuple[bytes, int] | None,
    ) -> Reason | None:
        if replay is not None:
            key, expires = replay
            row = db.execute("SELECT expires FROM seen WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] >= now:
                return Reason.REPLAYED
            db.execute("INSERT OR REPLACE INTO seen VALUES (?, ?)", (key, expires))
        row = db.execute(
            "SELECT counter FROM counters WHERE credential = ?", (credential_id,)
        ).fetchone()
        if row is not None and counter <= row[0]:
            return Reason.COUNTER_NOT_INCREASING
        db.execute(
            "INSERT OR REPLACE INTO counters VALUES (?, ?, ?)",
            (credential_id, counter, credential_expires),
        )
        row = db.execute(
            "SELECT generation FROM activations WHERE person = ?", (person,)
        ).fetchone()
        if row is not None and generation < row[0]:
            return Reason.ACTIVATION_SUPERSEDED
        if row is None or generation > row[0]:
            db.execute("INSERT OR REPLACE INTO activations VALUES (?, ?)", (person, generation))
        return None

    def _purge(self, now: int) -> None:
        self._db.execute("DELETE FROM seen WHERE expires < ?", (now,))
        self._db.execute("DELETE FROM counters WHERE expires < ?", (now,))

    def purge(self, now: int) -> None:
        with self._lock:
            self._purge(now)
