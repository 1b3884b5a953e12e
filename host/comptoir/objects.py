"""Reassembly of large objects (NFC presentations, camera frames) that a board
sends as OBJECT_CHUNK frames.

The link delivers a board's frames exactly once and in order within a session,
so an object's chunks arrive in offset order; anything else (a gap, an overlap,
a total that changes, an object beyond the size limit) is the board's bug or a
hostile board, and the object is dropped with a counted reason instead of
being delivered damaged. A session ending drops partial objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from comptoir_link import frames as F

CHUNK_HEADER = 11
MAX_OBJECT = {F.OBJ_NFC_PRESENTATION: 16 * 1024, F.OBJ_FRAME_JPEG: 256 * 1024,
              F.OBJ_FRAME_GRAY: 640 * 480 + 4}
MAX_PARTIAL_PER_PORT = 2


class ChunkError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Chunk:
    kind: int
    object_id: int
    total: int
    offset: int
    data: bytes


def parse_chunk(payload: bytes) -> Chunk:
    if len(payload) < CHUNK_HEADER:
        raise ChunkError(f"chunk of {len(payload)} bytes is shorter than its header")
    kind = payload[0]
    if kind not in MAX_OBJECT:
        raise ChunkError(f"unknown object kind {kind}")
    total = int.from_bytes(payload[3:7], "little")
    if total == 0 or total > MAX_OBJECT[kind]:
        raise ChunkError(f"object of {total} bytes (limit {MAX_OBJECT[kind]})")
    offset = int.from_bytes(payload[7:11], "little")
    data = bytes(payload[CHUNK_HEADER:])
    if offset + len(data) > total:
        raise ChunkError("chunk runs past the object's end")
    return Chunk(kind, int.from_bytes(payload[1:3], "little"), total, offset, data)


@dataclass(slots=True)
class _Partial:
    kind: int
    total: int
    buf: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True, slots=True)
class CompleteObject:
    port: str
    kind: int
    object_id: int
    data: bytes


class Reassembler:
    def __init__(self) -> None:
        self._partial: dict[tuple[str, int], _Partial] = {}
        self.dropped: dict[str, int] = {}

    def _drop(self, key: tuple[str, int], why: str) -> None:
        self._partial.pop(key, None)
        self.dropped[why] = self.dropped.get(why, 0) + 1

    def feed(self, port: str, payload: bytes) -> CompleteObject | None:
        """One OBJECT_CHUNK payload; the object when its last chunk arrived.
        Raises ChunkError (the object is dropped) for a chunk that cannot be right."""
        chunk = parse_chunk(payload)
        key = (port, chunk.object_id)
        part = self._partial.get(key)
        if part is None:
            if chunk.offset != 0:
                self.dropped["gap"] = self.dropped.get("gap", 0) + 1
                raise ChunkError(f"object {chunk.object_id} starts at offset {chunk.offset}")
            mine = [k for k in self._partial if k[0] == port]
            for old in mine[: max(0, len(mine) - MAX_PARTIAL_PER_PORT + 1)]:
                self._drop(old, "superseded")
            part = self._partial[key] = _Partial(chunk.kind, chunk.total)
        if chunk.kind != part.kind or chunk.total != part.total:
            self._drop(key, "inconsistent")
            raise ChunkError(f"object {chunk.object_id} changed kind or size mid-way")
        if chunk.offset != len(part.buf):
            self._drop(key, "gap")
            raise ChunkError(f"object {chunk.object_id}: chunk at {chunk.offset}, "
                             f"expected {len(part.buf)}")
        part.buf += chunk.data
        if len(part.buf) < part.total:
            return None
        del self._partial[key]
        return CompleteObject(port, part.kind, chunk.object_id, bytes(part.buf))

    def drop_port(self, port: str) -> None:
        for key in [k for k in self._partial if k[0] == port]:
            self._drop(key, "session ended")
