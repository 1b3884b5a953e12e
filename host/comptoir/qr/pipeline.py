"""From board messages to verdicts: reassemble camera frames, decode them, verify each screen
once, and send the board one verdict per screen.

Dedupe: the same QR text seen again on the same board is "the next frame of the same screen"
as long as it keeps being seen: each sighting refreshes it, and it is forgotten only after
`hold` seconds without one (the phone was taken away). Without the refresh, a phone left in
front of the camera would be re-verified after the window and refused as a replay (the
verifier's replay cache), turning an accepted patient's light red. A screen shown again after
`hold` seconds is verified again: a screenshot of a QR already used is then refused as
replayed, which is what it is. The key is the board id (it survives a replug), so a board that
reconnects while the same screen is in front of it does not get a second verdict.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from comptoir.events import BoardDown, Message, PortLost
from comptoir.objects import DEFAULT_MAX_OBJECT, Reassembler, parse_chunk
from comptoir.tokens.model import Result
from comptoir.verdicts import Admit, SendVerdict, verdict_for
from comptoir_link import frames as F

from .decode import DecodeError, decode_frame

log = logging.getLogger("comptoir.qr")

OnResult = Callable[[str, str, int, Result], None]  # port, board id, object id, result

FRAME_KINDS = frozenset((F.OBJ_FRAME_JPEG, F.OBJ_FRAME_GRAY))
MAX_QR_TEXT = 4096  # a QR code holds at most 4296 alphanumeric characters

@dataclass(slots=True)
class Seen:
    """A QR text verified on a board, and when it was last seen there."""

    text: bytes
    first: float
    last: float
    verdict: int
    sightings: int = 1


class QrPipeline:
    """Subscribe `on_event` to the daemon. Calls `send_verdict` once per screen."""

    def __init__(self, verifier: Any, send_verdict: SendVerdict, *,
                 on_result: OnResult | None = None, hold: float = 5.0,
                 max_object: int = DEFAULT_MAX_OBJECT, max_seen_per_board: int = 4,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.verifier = verifier
        self.send_verdict = send_verdict
        self.on_result = on_result
        self.admit: Admit | None = None
        self.hold = hold
        self.max_seen = max_seen_per_board
        self.clock = clock
        # One frame at a time per board: a new frame id means the last one was abandoned.
        self.reassembler = Reassembler(max_object=max_object, max_partial=1,
                                       max_total=4 * max_object, kinds=FRAME_KINDS)
        self._seen: dict[str, list[Seen]] = {}
        self.counters: dict[str, int] = {}
        self.decode_seconds: list[float] = []  # the last few, for metrics and the bench

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    # ------------------------------------------------------------------ events
    def on_event(self, ev: object) -> None:
        if isinstance(ev, (BoardDown, PortLost)):
            self.reassembler.drop_port(ev.port)
        elif isinstance(ev, Message):
            if ev.ftype == F.OBJECT_CHUNK:
                self._on_chunk(ev)
            elif ev.ftype == F.QR_TEXT:
                self._on_qr_text(ev)

    def _on_chunk(self, ev: Message) -> None:
        try:
            chunk = parse_chunk(ev.payload)
        except ValueError:
            self._count("malformed_chunks")
            return
        if chunk.kind not in FRAME_KINDS:
            return  # NFC presentations are the NFC path's
        obj = self.reassembler.push(ev.port, chunk)
        if obj is None:
            return
        self._count("frames")
        t0 = time.perf_counter()
        try:
            texts = decode_frame(chunk.kind, obj)
        except DecodeError as exc:
            self._count("bad_frames")
            log.info("frame %d from %s refused: %s", chunk.object_id, ev.port, exc)
            return
        finally:
            self.decode_seconds.append(time.perf_counter() - t0)
            del self.decode_seconds[:-256]
        if not texts:
            self._count("frames_without_qr")
            return
        for text in texts:
            self.handle_text(ev.port, ev.board_id, chunk.object_id, text, ev.at or None)

    def _on_qr_text(self, ev: Message) -> None:
        if len(ev.payload) < 2 or len(ev.payload) > 2 + MAX_QR_TEXT:
            self._count("malformed_qr_text")
            return
        object_id = ev.payload[0] | ev.payload[1] << 8
        self.handle_text(ev.port, ev.board_id, object_id, bytes(ev.payload[2:]), ev.at or None)

    # ------------------------------------------------------------------ one QR text
    def handle_text(self, port: str, board_id: str, object_id: int, text: bytes,
                    at: float | None = None) -> int | None:
        """Verify a QR text unless this board is still showing it; return the verdict sent,
        or None for a repeat."""
        now = self.clock() if at is None else at
        key = board_id or port
        seen = [s for s in self._seen.get(key, ()) if now - s.last <= self.hold]
        for s in seen:
            if s.text == text:
                s.last = now
                s.sightings += 1
                self._seen[key] = seen
                self._count("repeats")
                return None
        result = self.verifier.verify_qr(text)
        # The transaction opened before the verdict (comptoir.opener.admit): the board is told
        # `error` when it could not be, not "accepted".
        shown = result if self.admit is None else self.admit(port, board_id, object_id, "qr",
                                                              result)
        verdict, reason, display = verdict_for(shown)
        seen.append(Seen(text, now, now, verdict))
        self._seen[key] = seen[-self.max_seen:]
        self._count("verified")
        self._count("accepted" if shown.ok else "refused")
        if self.on_result is not None:
            self.on_result(port, board_id, object_id, result)
        self.send_verdict(port, object_id, verdict, reason, display)
        return verdict

    def seen(self, board_id: str) -> list[Seen]:
        return list(self._seen.get(board_id, ()))
