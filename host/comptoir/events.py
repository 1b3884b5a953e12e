"""What the board connections tell the rest of the daemon, as plain records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class BoardInfo:
    """A board as its HELLO described it."""

    board_id: str  # hex
    name: str
    firmware: str
    capabilities: tuple[str, ...]
    max_payload: int  # the largest payload the board receives (HELLO's MAX_PAYLOAD)
    free_heap: int | None = None


@dataclass(frozen=True, slots=True)
class BoardUp:
    port: str
    board: BoardInfo


@dataclass(frozen=True, slots=True)
class BoardDown:
    port: str
    reason: str


@dataclass(frozen=True, slots=True)
class BoardRefused:
    """A board said HELLO but is not admitted (unknown, wrong pairing proof)."""

    port: str
    board_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PortLost:
    """The serial device went away (unplugged) or could not be opened."""

    port: str
    error: str


@dataclass(frozen=True, slots=True)
class PortOpened:
    port: str


@dataclass(frozen=True, slots=True)
class Message:
    port: str
    board_id: str
    ftype: int
    payload: bytes
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class LinkError:
    port: str
    counter: str
    detail: str


@dataclass(slots=True)
class BoardStatus:
    """The daemon's live view of one port."""

    port: str
    state: str = "absent"
    board: BoardInfo | None = None
    counters: dict[str, int] = field(default_factory=dict)
    last_status: dict[str, Any] = field(default_factory=dict)
