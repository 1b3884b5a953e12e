"""NFC challenges: issued by the host for one reader board, single use, short-lived.

The daemon calls `issue(board_id)` when a phone is detected on a board, sends the challenge to
the phone, and the verifier consumes it when the presentation comes back. Challenges live in
memory only: after a restart every outstanding challenge is unknown, which is the safe outcome.
Used and expired challenges are remembered until well after their expiry, so that a refusal
can say "reused" or "expired" rather than just "unknown".
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable

from comptoir.clock import now as clock_now

from .reasons import Reason, TokenError

CHALLENGE_BYTES = 16


class ChallengeRegistry:
    def __init__(
        self,
        *,
        ttl: float = 30.0,
        per_board: int = 4,
        max_boards: int = 64,
        clock: Callable[[], float] = clock_now,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._ttl = ttl
        self._per_board = per_board
        self._max_boards = max_boards
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        # board id -> challenge -> [expires at, used]
        self._boards: OrderedDict[str, OrderedDict[bytes, list]] = OrderedDict()

    def issue(self, board_id: str, now: float | None = None) -> bytes:
        now = self._clock() if now is None else now
        challenge = self._rng(CHALLENGE_BYTES)
        with self._lock:
            board = self._boards.pop(board_id, None)
            if board is None:
                board = OrderedDict()
                while len(self._boards) >= self._max_boards:
                    self._boards.popitem(last=False)  # least recently used board
            self._boards[board_id] = board
            self._forget_old(board, now)
            live = [c for c, (exp, used) in board.items() if not used and exp >= now]
            for old in live[: max(0, len(live) - self._per_board + 1)]:
                del board[old]  # a board only needs its last few challenges
            board[challenge] = [now + self._ttl, False]
        return challenge

    def _forget_old(self, board: OrderedDict[bytes, list], now: float) -> None:
        for c in [c for c, (exp, _) in board.items() if exp + self._ttl < now]:
            del board[c]

    def _lookup(self, board_id: str, challenge: bytes, now: float) -> list:
        board = self._boards.get(board_id)
        entry = None if board is None else board.get(challenge)
        if entry is None:
            raise TokenError(Reason.CHALLENGE_UNKNOWN)
        if entry[1]:
            raise TokenError(Reason.CHALLENGE_REUSED)
        if entry[0] < now:
            raise TokenError(Reason.CHALLENGE_EXPIRED)
        return entry

    def check(self, board_id: str, challenge: bytes, now: float | None = None) -> None:
        """Raise TokenError unless the challenge is outstanding for this board (not consumed)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._lookup(board_id, challenge, now)

    def consume(self, board_id: str, challenge: bytes, now: float | None = None) -> None:
        """Use the challenge up, or raise TokenError (unknown, expired or reused)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._lookup(board_id, challenge, now)[1] = True
