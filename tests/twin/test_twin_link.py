"""The link end to end: firmware on MicroPython (100K heap), real ptys, the wire
model at a real baud rate, the real daemon."""

from __future__ import annotations

import time

from comptoir.events import BoardDown, BoardUp, LinkError, Message, PortLost
from comptoir_link import frames as F
from comptoir_link.cobs import encode_into, max_encoded_len
from comptoir_link.compat import crc32
from comptoir_link.link import C_RX_FRAMES


def _status(tw, log, port):
    mark = log.mark()
    tw.daemon.send(port, F.STATUS_REQUEST)
    ev = log.expect(lambda e: isinstance(e, Message) and e.ftype == F.STATUS, 5, after=mark)
    from comptoir.daemon import parse_status

    return parse_status(ev.payload)


def _wait(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def _frame(body: bytes) -> bytes:
    c = crc32(body) & 0xFFFFFFFF
    body += c.to_bytes(4, "little")
    out = bytearray(max_encoded_len(len(body)))
    n = encode_into(body, len(body), out)
    return b"\x00" + bytes(out[:n]) + b"\x00"


def test_hello_100_heartbeats_then_cut_and_restore(twin_factory):
    tw, log = twin_factory(1, baud=115200, heartbeat_ms=50)
    board = tw.boards[0]
    conn = tw.daemon.connections[board.port]
    up = log.of(BoardUp)[0]
    assert up.board.firmware == "0.1.0" and up.board.max_payload == 4096
    assert up.board.board_id == board.firmware.board_id

    start = conn.link.counters[C_RX_FRAMES]
    assert _wait(lambda: conn.link.counters[C_RX_FRAMES] - start >= 100, 15)
    assert not log.of(BoardDown) and not log.of(LinkError)

    mark = log.mark()
    board.wire.cut()
    log.expect(lambda e: isinstance(e, BoardDown), 5, after=mark)
    assert _wait(lambda: any("link down" in line for line in board.firmware.lines), 5)
    board.wire.restore()
    log.expect(lambda e: isinstance(e, BoardUp), 10, after=mark)
    st = _status(tw, log, board.port)
    assert st["sessions"] == 2 and st["link_lost"] >= 1
    assert board.firmware.exits == []  # recovered without a restart


def test_large_frames_pass_intact(twin_factory):
    tw, log = twin_factory(1, baud=921600)
    port = tw.boards[0].port
    mark = log.mark()
    tw.daemon.send(port, F.BENCH_REQUEST, (5).to_bytes(2, "little") + (4096).to_bytes(2, "little"))
    log.expect(lambda e: isinstance(e, Message) and e.ftype == F.BENCH_DONE, 10, after=mark)
    data = [e for e in log.events[mark:] if isinstance(e, Message) and e.ftype == F.BENCH_DATA]
    assert [int.from_bytes(d.payload[:2], "little") for d in data] == [0, 1, 2, 3, 4]
    filler = bytes((i * 7 + 1) & 0xFF for i in range(2, 4096))
    assert all(len(d.payload) == 4096 and d.payload[2:] == filler for d in data)


def test_garbage_oversize_and_wrong_version_are_counted_and_link_carries_on(twin_factory):
    tw, log = twin_factory(1, baud=115200)
    board = tw.boards[0]
    mark = log.mark()
    # Towards the host: line noise, a frame far beyond any limit, a HELLO of protocol 9.
    board.wire.inject_garbage("a2b", bytes(range(1, 200)) + b"\x00")
    board.wire.inject_garbage("a2b", b"\x00" + b"\x55" * 9000 + b"\x00")
    board.wire.inject_garbage("a2b", _frame(bytes([9, F.HELLO, 0x42, 0, 0]) + b"\x07\x08abcdefgh"))
    # Towards the board: noise too.
    board.wire.inject_garbage("b2a", 300)
    counters = {"malformed_frames", "crc_errors", "oversized_frames", "bad_version"}
    for name in ("oversized_frames", "bad_version"):
        log.expect(lambda e, n=name: isinstance(e, LinkError) and e.counter == n, 5, after=mark)
    got = {e.counter for e in log.of(LinkError)}
    assert got & {"malformed_frames", "crc_errors"} and got <= counters | {"short_frames"}
    st = _status(tw, log, board.port)
    assert st["crc_errors"] + st["malformed_frames"] + st["oversized_frames"] >= 1
    assert not [e for e in log.events[mark:] if isinstance(e, BoardDown)]
    assert tw.daemon.connections[board.port].up


def test_board_power_loss_and_usb_unplug_are_survived(twin_factory):
    tw, log = twin_factory(1, baud=115200, heartbeat_ms=100)
    board = tw.boards[0]
    mark = log.mark()
    board.firmware.kill()  # the supervisor boots it again, as power coming back
    log.expect(lambda e: isinstance(e, BoardUp), 15, after=mark)
    mark = log.mark()
    board.wire.unplug()
    log.expect(lambda e: isinstance(e, PortLost), 5, after=mark)
    time.sleep(0.5)
    board.wire.replug()
    log.expect(lambda e: isinstance(e, BoardUp), 15, after=mark)
    assert _status(tw, log, board.port)["free_heap"] > 10_000
