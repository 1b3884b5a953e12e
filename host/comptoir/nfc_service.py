"""The NFC path on the host: keep a fresh single-use challenge on every NFC
board, reassemble each tap's presentation, verify it, and answer the board
with a verdict for the person at the counter.

Each board holds exactly one challenge at a time (a CHALLENGE frame replaces
the previous one). It asks for a new one (CHALLENGE_NEEDED) when a session
starts and each time it put one on air; the service also refreshes it before
the registry's time-to-live runs out, so an idle counter never holds an
expired challenge.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from comptoir.clock import monotonic as clock_monotonic
from comptoir.events import BoardDown, BoardUp, Message
from comptoir.objects import Reassembler, parse_chunk
from comptoir.tokens.challenges import ChallengeRegistry
from comptoir.tokens.model import Refused, Verified
from comptoir.tokens.verify import Verifier
from comptoir.verdicts import Admit, verdict_for, verdict_payload
from comptoir_link import frames as F

log = logging.getLogger("comptoir.nfc")

ANSWER_MEMORY_S = 120.0  # longer than a board keeps an unacknowledged presentation



@dataclass(frozen=True, slots=True)
class Presentation:
    """A tap or a scan, verified or refused. `result` holds personal data: it
    never goes to a log line as is."""

    port: str
    board_id: str
    object_id: int
    channel: str
    result: Verified | Refused
    received_at: float


@dataclass(frozen=True, slots=True)
class TapFailed:
    port: str
    object_id: int
    code: int
    text: str


class NfcService:
    def __init__(
        self,
        send: Callable[[str, int, bytes], None],
        publish: Callable[[Any], None],
        verifier: Verifier,
        challenges: ChallengeRegistry,
        *,
        refresh_s: float = 20.0,
    ) -> None:
        self._send = send
        self._publish = publish
        self.admit: Admit | None = None  # comptoir.opener.TransactionOpener.admit
        self.verifier = verifier
        self.challenges = challenges
        self.refresh_s = refresh_s
        # Presentations are 350-550 bytes; 4 kB bounds what a hostile board can make us hold.
        self.objects = Reassembler(max_object=4096, max_partial=1, max_total=64 * 1024,
                                   kinds=frozenset((F.OBJ_NFC_PRESENTATION,)))
        self._boards: dict[str, str] = {}  # port -> board id, NFC boards with a session
        self._issued_at: dict[str, float] = {}
        # Presentations verified lately, by (board, bytes): a board whose link
        # dropped before our acknowledgement sends the same presentation again;
        # it gets the same verdict, and it is not a second tap.
        self._answered: OrderedDict[tuple[str, bytes], tuple[int, int, str, float]] = (
            OrderedDict())
        self._next_id: dict[str, int] = {}
        self._lock = threading.Lock()

    def on_event(self, ev: Any) -> None:
        if isinstance(ev, BoardUp):
            if "nfc" in ev.board.capabilities:
                with self._lock:
                    self._boards[ev.port] = ev.board.board_id
        elif isinstance(ev, BoardDown):
            with self._lock:
                self._boards.pop(ev.port, None)
                self._issued_at.pop(ev.port, None)
            self.objects.drop_port(ev.port)
        elif isinstance(ev, Message):
            if ev.ftype == F.CHALLENGE_NEEDED:
                self._issue(ev.port)
            elif ev.ftype == F.OBJECT_CHUNK and ev.payload[:1] == bytes((F.OBJ_NFC_PRESENTATION,)):
                self._chunk(ev)
            elif ev.ftype == F.TAP_ERROR and len(ev.payload) >= 4:
                code = int.from_bytes(ev.payload[2:4], "little")
                text = ev.payload[4:].decode("utf-8", "replace")
                log.info("tap failed", extra={"port": ev.port, "code": code, "detail": text})
                self._publish(TapFailed(ev.port, int.from_bytes(ev.payload[:2], "little"),
                                        code, text))

    def tick(self) -> None:
        """Refresh challenges that are getting old (call about once a second)."""
        now = clock_monotonic()
        with self._lock:
            stale = [p for p, t in self._issued_at.items() if now - t >= self.refresh_s]
        for port in stale:
            self._issue(port)

    def _issue(self, port: str) -> None:
        with self._lock:
            board_id = self._boards.get(port)
            if board_id is None:
                return
            cid = self._next_id.get(port, 0) + 1 & 0xFFFF
            self._next_id[port] = cid
            self._issued_at[port] = clock_monotonic()
        challenge = self.challenges.issue(board_id)
        self._send(port, F.CHALLENGE, cid.to_bytes(2, "little") + challenge)

    def _chunk(self, ev: Message) -> None:
        try:
            chunk = parse_chunk(ev.payload)
        except ValueError as e:
            log.warning("bad presentation chunk", extra={"port": ev.port, "detail": str(e)})
            return
        data = self.objects.push(ev.port, chunk)
        if data is None:
            return
        key = (ev.board_id, hashlib.sha256(data).digest())
        now = clock_monotonic()
        with self._lock:
            for k in [k for k, v in self._answered.items() if now - v[3] > ANSWER_MEMORY_S]:
                del self._answered[k]
            again = self._answered.get(key)
        if again is not None:
            verdict, reason, text, _ = again
            self._send(ev.port, F.VERDICT, verdict_payload(chunk.object_id, verdict, reason, text))
            log.info("nfc presentation repeated after a link loss: same verdict",
                     extra={"port": ev.port, "object_id": chunk.object_id})
            return
        result = self.verifier.verify_nfc(data, ev.board_id)
        # The transaction opened before the verdict (comptoir.opener.admit).
        shown = result if self.admit is None else self.admit(ev.port, ev.board_id,
                                                              chunk.object_id, "nfc", result)
        verdict, reason, text = verdict_for(shown)
        with self._lock:
            self._answered[key] = (verdict, reason, text, now)
            while len(self._answered) > 256:
                self._answered.popitem(last=False)
        self._send(ev.port, F.VERDICT, verdict_payload(chunk.object_id, verdict, reason, text))
        log.info("nfc presentation", extra={
            "port": ev.port, "object_id": chunk.object_id, "bytes": len(data),
            "verdict": verdict, "reason": getattr(getattr(result, "reason", None), "value", "")})
        self._publish(Presentation(ev.port, ev.board_id, chunk.object_id, "nfc", result, ev.at))
