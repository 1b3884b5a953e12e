"""OBJECT_CHUNK reassembly, for every large object a board sends (NFC presentations, camera
frames), with limits: what a board sends cannot make the host hold more than
`max_object` bytes per object, `max_partial` partial objects per port and `max_total` bytes
in all.

A board sends an object's chunks in order (offset 0, then each chunk where the previous one
ended) and the link delivers them exactly once and in order, so the reassembler accepts only
that: a chunk that does not continue its object exactly (a gap, an overlap, another total or
kind) drops the object. It never guesses, so it never yields bytes the board did not send in
that order.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

HEADER = struct.Struct("<BHII")  # kind u8, object id u16, total u32, offset u32
DEFAULT_MAX_OBJECT = 640 * 480 + 4  # a VGA grayscale frame; a JPEG VGA frame is ~30-110 kB


@dataclass(frozen=True, slots=True)
class Chunk:
    kind: int
    object_id: int
    total: int
    offset: int
    data: bytes


def parse_chunk(payload: bytes) -> Chunk:
    """An OBJECT_CHUNK payload; ValueError when it is shorter than its header."""
    if len(payload) < HEADER.size:
        raise ValueError(f"OBJECT_CHUNK of {len(payload)} bytes, header is {HEADER.size}")
    kind, object_id, total, offset = HEADER.unpack_from(payload)
    return Chunk(kind, object_id, total, offset, bytes(payload[HEADER.size:]))


def chunk_payload(kind: int, object_id: int, total: int, offset: int, data: bytes) -> bytes:
    return HEADER.pack(kind, object_id, total, offset) + data


class _Partial:
    __slots__ = ("buf", "kind", "received", "total")

    def __init__(self, kind: int, total: int) -> None:
        self.kind = kind
        self.total = total
        self.buf = bytearray(total)
        self.received = 0


class Reassembler:
    """Objects from chunks, keyed by (port, object id). `push` returns the completed object's
    bytes or None; each refusal is counted by name in `counters`."""

    def __init__(self, *, max_object: int = DEFAULT_MAX_OBJECT, max_partial: int = 1,
                 max_total: int = 4 * DEFAULT_MAX_OBJECT,
                 kinds: frozenset[int] | None = None) -> None:
        if max_partial < 1 or max_object < 1 or max_total < max_object:
            raise ValueError("limits must allow at least one object")
        self.max_object = max_object
        self.max_partial = max_partial
        self.max_total = max_total
        self.kinds = kinds  # None: any kind
        self._partial: OrderedDict[tuple[Hashable, int], _Partial] = OrderedDict()
        self._held = 0
        self.counters: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    @property
    def held_bytes(self) -> int:
        return self._held

    def partial_count(self, port: Hashable | None = None) -> int:
        return sum(1 for p, _ in self._partial if port is None or p == port)

    def _drop(self, key: tuple[Hashable, int], counter: str) -> None:
        part = self._partial.pop(key, None)
        if part is not None:
            self._held -= part.total
            self._count(counter)

    def drop_port(self, port: Hashable) -> int:
        """The session ended (BoardDown): its partial objects can never complete."""
        keys = [k for k in self._partial if k[0] == port]
        for k in keys:
            self._drop(k, "dropped_session_end")
        return len(keys)

    def push(self, port: Hashable, chunk: Chunk) -> bytes | None:
        if self.kinds is not None and chunk.kind not in self.kinds:
            self._count("ignored_kind")
            return None
        key = (port, chunk.object_id)
        part = self._partial.get(key)
        if part is None:
            if chunk.offset != 0:
                # The start was lost to us (abandoned, or we dropped the object): ignore the
                # rest of it rather than hold a buffer that cannot complete.
                self._count("orphan_chunks")
                return None
            if chunk.total == 0 or chunk.total > self.max_object:
                self._count("oversize_objects" if chunk.total else "empty_objects")
                return None
            # A new object on this port: the board sends one at a time, so its older
            # partials beyond the allowed number were abandoned.
            mine = [k for k in self._partial if k[0] == port]
            while len(mine) >= self.max_partial:
                self._drop(mine.pop(0), "dropped_superseded")
            while self._held + chunk.total > self.max_total and self._partial:
                self._drop(next(iter(self._partial)), "dropped_memory")
            part = _Partial(chunk.kind, chunk.total)
            self._partial[key] = part
            self._held += part.total
        elif (chunk.kind != part.kind or chunk.total != part.total
              or chunk.offset != part.received):
            self._drop(key, "dropped_inconsistent")
            return None
        end = chunk.offset + len(chunk.data)
        if end > part.total:
            self._drop(key, "dropped_overrun")
            return None
        part.buf[chunk.offset:end] = chunk.data
        part.received = end
        self._partial.move_to_end(key)
        if end < part.total:
            return None
        del self._partial[key]
        self._held -= part.total
        self._count("objects")
        return bytes(part.buf)
