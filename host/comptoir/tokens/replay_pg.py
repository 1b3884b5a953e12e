"""The verifier's replay and activation state in PostgreSQL, shared by every counter of a
pharmacy (issue 17): a QR accepted at counter 1 is refused at counter 2.

The same decisions as the journal (`replay.VerifierState`), made by the database in one
transaction per presentation, so that two daemons, or two boards of one daemon, presenting the
same token at the same instant cannot both be accepted:

1. the person's activation generation: an upsert keeping the highest one, which also locks the
   person's row until the end of the transaction (two presentations of one person's phone are
   decided one after the other); a newer generation already seen refuses the presentation
   (`activation_superseded`);
2. the QR presentation's key (credential id, presentation id), a primary key: inserting it
   again while it is live finds the row and refuses (`replayed`); an expired one is reused;
3. the credential's counter: updated only when it increases (`counter_not_increasing`).

A refusal rolls the whole transaction back (nothing of a refused presentation is kept), and
the verdict is given only after COMMIT returned. When the server cannot be reached, or goes away
before the COMMIT is confirmed, the presentation is refused with `state_unavailable` (a verdict
`error` at the counter): never accepted without the shared check. If the COMMIT did reach the
server, the same QR shown again is refused as replayed: at most once, never twice.

Persons are keyed by HMAC(pepper, NIR) as in the journal (the pepper is the same file on each
counter PC, copied by the installer): the database holds no NIR.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path
from typing import Any

from psycopg_pool import ConnectionPool

from comptoir.storage.errors import StorageError
from comptoir.storage.migrations import Schema
from comptoir.storage.postgres import migrate_locked, open_pool, transaction, unavailable

from .reasons import Reason, TokenError

log = logging.getLogger("comptoir.tokens")

STORE = "verifier"
SCHEMA = Schema(steps=(
    """
    CREATE TABLE verifier_activations (
        person bytea PRIMARY KEY,
        generation bigint NOT NULL
    );
    CREATE TABLE verifier_presentations (
        key bytea PRIMARY KEY,
        expires bigint NOT NULL
    );
    CREATE INDEX verifier_presentations_expires ON verifier_presentations (expires);
    CREATE TABLE verifier_credentials (
        credential bytea PRIMARY KEY,
        counter bigint NOT NULL,
        expires bigint NOT NULL
    );
    CREATE INDEX verifier_credentials_expires ON verifier_credentials (expires);
    """,
))

_ACTIVATION = (
    "INSERT INTO verifier_activations (person, generation) VALUES (%s, %s) "
    "ON CONFLICT (person) DO UPDATE SET generation = "
    "GREATEST(verifier_activations.generation, EXCLUDED.generation) RETURNING generation"
)
_PRESENTATION = (
    "INSERT INTO verifier_presentations (key, expires) VALUES (%s, %s) "
    "ON CONFLICT (key) DO UPDATE SET expires = EXCLUDED.expires "
    "WHERE verifier_presentations.expires < %s RETURNING 1"
)
_CREDENTIAL = (
    "INSERT INTO verifier_credentials (credential, counter, expires) VALUES (%s, %s, %s) "
    "ON CONFLICT (credential) DO UPDATE SET counter = EXCLUDED.counter, "
    "expires = EXCLUDED.expires WHERE verifier_credentials.counter < EXCLUDED.counter RETURNING 1"
)


class StateTooNew(RuntimeError):
    pass


class _Refuse(Exception):
    def __init__(self, reason: Reason) -> None:
        self.reason = reason


def unavailable_error(e: BaseException) -> TokenError:
    """What the verifier answers when the shared state cannot be reached: its class only
    (a server's message can name hosts, never a person, but stays in the debug log)."""
    log.warning("shared verifier state unreachable: %s", type(e).__name__)
    log.debug("shared verifier state error: %s", e)
    return TokenError(Reason.STATE_UNAVAILABLE, "shared database unreachable")


class PgVerifierState:
    """`replay.VerifierState`'s interface on a PostgreSQL pool (the pool is the caller's)."""

    def __init__(self, pool: ConnectionPool, *, pepper: bytes) -> None:
        if len(pepper) < 16:
            raise ValueError("pepper too short")
        self._pool = pool
        self._pepper = pepper
        self.skipped_records = 0  # the journal's figure; a database has none to skip
        self._owns_pool = False
        migrate_locked(pool, STORE, SCHEMA,
                       too_new=lambda f, o: StateTooNew(f"verifier tables at version {f}, "
                                                        f"this daemon knows {o}"))

    def person_key(self, nir: str) -> bytes:
        return hmac.new(self._pepper, nir.encode(), hashlib.sha256).digest()[:16]

    def highest_generation(self, nir: str) -> int:
        try:
            with self._pool.connection() as conn:
                row = conn.execute("SELECT generation FROM verifier_activations WHERE "
                                   "person = %s", (self.person_key(nir),)).fetchone()
        except Exception as e:
            if unavailable(e):
                raise unavailable_error(e) from None
            raise
        return -1 if row is None else int(row[0])

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
        """Check and record one presentation in one transaction; -> the refusal reason, or
        None once committed. Raises TokenError(STATE_UNAVAILABLE) when the server is away."""
        person = self.person_key(nir)
        try:
            with transaction(self._pool) as conn:
                self._decide(conn, now, person, generation, replay,
                             credential_id, counter, credential_expires)
        except _Refuse as r:
            return r.reason
        except Exception as e:
            if unavailable(e):
                raise unavailable_error(e) from None
            raise
        return None

    @staticmethod
    def _decide(conn: Any, now: int, person: bytes, generation: int,
                replay: tuple[bytes, int] | None, credential: bytes, counter: int,
                expires: int) -> None:
        known = conn.execute(_ACTIVATION, (person, generation)).fetchone()[0]
        if known > generation:
            raise _Refuse(Reason.ACTIVATION_SUPERSEDED)
        if replay is not None and replay[0]:
            key, key_expires = replay
            if conn.execute(_PRESENTATION, (key, key_expires, now)).fetchone() is None:
                raise _Refuse(Reason.REPLAYED)
        if conn.execute(_CREDENTIAL, (credential, counter, expires)).fetchone() is None:
            raise _Refuse(Reason.COUNTER_NOT_INCREASING)

    def purge(self, now: int) -> None:
        """Forget replay keys and credentials past their expiry (generations are kept)."""
        with transaction(self._pool) as conn:
            conn.execute("DELETE FROM verifier_presentations WHERE expires < %s", (now,))
            conn.execute("DELETE FROM verifier_credentials WHERE expires < %s", (now,))

    def close(self) -> None:
        """Closes the pool when it is this state's own (`open_shared_state`)."""
        if self._owns_pool:
            self._pool.close()


def open_shared_state(url: str, password_file: str | Path | None, *,
                      pepper: bytes) -> PgVerifierState:
    """The daemon's shared state: its own pool on `url` (password from the file or from
    PGPASSWORD). Raises when the tables cannot be created or migrated (server unreachable at
    start-up: the daemon says so and stops, rather than verify without the shared check)."""
    pool = open_pool(url, password_file=password_file, name="comptoir-verifier")
    try:
        state = PgVerifierState(pool, pepper=pepper)
    except BaseException as e:
        pool.close()
        if unavailable(e):
            raise StorageError(f"the shared database is unreachable ({type(e).__name__}); "
                               "is the server up and storage.url right?") from None
        raise
    state._owns_pool = True
    return state
