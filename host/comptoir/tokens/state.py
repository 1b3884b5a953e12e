"""What the verifier needs of its replay and activation state, whichever holds it: the
journal on this PC (`replay.VerifierState`) or PostgreSQL shared by every counter
(`replay_pg.PgVerifierState`, with the `[postgres]` extra)."""

from __future__ import annotations

from typing import Protocol

from .reasons import Reason


class ReplayState(Protocol):
    def person_key(self, nir: str) -> bytes: ...
    def highest_generation(self, nir: str) -> int: ...

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
        """Check and record one presentation atomically; -> the refusal reason, or None when
        recorded. May raise TokenError (the state could not be reached: nothing decided)."""
        ...

    def purge(self, now: int) -> None: ...
    def close(self) -> None: ...
