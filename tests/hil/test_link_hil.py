"""Link scenarios on the device under test (a real board with --board-port, else the
twin): HELLO, heartbeats, large frames, bad input; then what only hardware can show."""

from __future__ import annotations

import time

import pytest

from comptoir.daemon import parse_status
from comptoir.events import BoardDown, BoardUp, LinkError, Message
from comptoir_link import frames as F
from comptoir_link.link import C_RX_FRAMES
from comptoir_tools.boards.hil import Target


def _up(target: Target, timeout: float = 30.0) -> BoardUp:
    return target.log.expect(lambda e: isinstance(e, BoardUp), timeout)


def _status(target: Target) -> dict[str, int]:
    mark = target.log.mark()
    target.daemon.send(target.port, F.STATUS_REQUEST)
    ev = target.log.expect(lambda e: isinstance(e, Message) and e.ftype == F.STATUS, 5,
                           after=mark)
    return parse_status(ev.payload)


def test_hello_names_the_board_and_heartbeats_flow(target):
    up = _up(target)
    d = target.board.definition
    assert up.board.name == target.board.name
    assert up.board.firmware and len(bytes.fromhex(up.board.board_id)) >= 1
    # What the board receives: 96 bytes on the REPL's UART (its 260-byte ring,
    # docs/boards.md), the board file's max_payload otherwise.
    repl = d["uarts"]["host"].get("repl", False)
    assert up.board.max_payload == (96 if repl else d.get("link", {}).get("max_payload", 4096))
    conn = target.daemon.connections[target.port]
    start = conn.link.counters[C_RX_FRAMES]
    deadline = time.monotonic() + 10
    # heartbeat 100 ms: 20 frames from the board take about 2 s
    while conn.link.counters[C_RX_FRAMES] - start < 20:
        assert time.monotonic() < deadline, "heartbeats stopped"
        time.sleep(0.05)
    assert not target.log.of(BoardDown)


def test_large_frames_pass_intact(target):
    _up(target)
    # Board to host: the board file's max_payload (the host receives 4096), whatever
    # the board receives.
    size = min(target.board.definition.get("link", {}).get("max_payload", 4096), 4096)
    mark = target.log.mark()
    target.daemon.send(target.port, F.BENCH_REQUEST,
                       (5).to_bytes(2, "little") + size.to_bytes(2, "little"))
    target.log.expect(lambda e: isinstance(e, Message) and e.ftype == F.BENCH_DONE, 20,
                      after=mark)
    data = [e for e in target.log.events[mark:]
            if isinstance(e, Message) and e.ftype == F.BENCH_DATA]
    assert [int.from_bytes(d.payload[:2], "little") for d in data] == [0, 1, 2, 3, 4]
    filler = bytes((i * 7 + 1) & 0xFF for i in range(2, size))
    assert all(len(d.payload) == size and d.payload[2:] == filler for d in data)


def test_bad_input_is_counted_and_the_link_carries_on(target):
    _up(target)
    before = _status(target)
    mark = target.log.mark()
    target.inject(bytes(range(1, 200)) + b"\x00")  # noise, then a delimiter
    target.inject(b"\x00" + b"\x55" * 9000 + b"\x00")  # a frame beyond any buffer
    target.inject(b"\x00\x02\x11\x22\x00")  # a truncated COBS block
    time.sleep(0.5)
    after = _status(target)
    damaged = ("crc_errors", "malformed_frames", "oversized_frames")
    assert sum(after[k] for k in damaged) > sum(before[k] for k in damaged)
    assert not [e for e in target.log.events[mark:] if isinstance(e, BoardDown)]
    assert target.daemon.connections[target.port].up
    # The board's free heap is read without a collection, so it swings by kilobytes with
    # the garbage of the moment (2 144 against 5 632 B seen on the twin under load): not a
    # leak measure. That the board kept its session and answered STATUS is what shows here.
    assert after["sessions"] == before["sessions"]


@pytest.mark.hil
def test_real_board_runs_the_flashed_identity(target, board_port):
    """Hardware only: the board presents the id `comptoir flash` provisioned, and the
    host admitted it with the key recorded then (the twin provisions its own)."""
    up = _up(target)
    paired = target.daemon.paired
    assert paired is not None and paired.key_for(up.board.board_id) is not None, (
        f"board {up.board.board_id} is not in {paired.dir if paired else '?'}: flash it with "
        f"`comptoir flash --board {target.board.name} --port ...`")
    assert not [e for e in target.log.events if isinstance(e, LinkError)
                and e.counter in ("crc_errors", "malformed_frames")], "a clean line at rest"
