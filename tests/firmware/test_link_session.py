# The link's session, acknowledgement and recovery rules, with a fake clock.
# Runs under CPython and the MicroPython unix port.
from linkpair import Pair

from comptoir_link import frames as F
from comptoir_link.host_side import HostLink
from comptoir_link.link import DOWN, REFUSED, UP


def test_hello_handshake_exchanges_identity_and_limits():
    p = Pair(board_payload=512, host_payload=2048)
    p.connect()
    assert p.host.peer[F.T_BOARD_NAME] == b"test-board"
    assert p.host.peer[F.T_BOARD_ID] == b"\x01\x02\x03\x04"
    # Each side sends no more than the other can receive.
    assert p.board.tx_limit == 512 and p.host.tx_limit == 512
    assert p.board.heartbeat_ms == 100  # the host's setting
    assert p.events == ["host up", "board up"]


def test_messages_arrive_once_in_order_both_ways():
    p = Pair(window=2)
    p.connect()
    sent = []
    for i in range(40):
        while not p.board.send(F.LOG, b"m%d" % i):
            p.run(5)
        sent.append((F.LOG, b"m%d" % i))
        p.host.send(F.ERROR, b"h%d" % i) or p.run(5)
    p.run(200)
    assert p.host_got == sent
    assert len(p.board_got) > 0
    assert [m for _, m in p.board_got] == [b"h%d" % i for i in range(40)][: len(p.board_got)]


def test_window_limits_outstanding_frames():
    p = Pair(window=2)
    p.connect()
    assert p.board.send(F.LOG, b"a") and p.board.send(F.LOG, b"b")
    assert not p.board.send(F.LOG, b"c")  # window full until an ACK
    p.deliver()
    assert p.board.send(F.LOG, b"c")


def test_large_payload_passes():
    p = Pair(max_payload=4096)
    p.connect()
    blob = bytearray(4096)
    for i in range(4096):
        blob[i] = (i * 31 + 7) & 0xFF
    assert p.board.send(F.LOG, blob)
    p.run(20)
    assert p.host_got == [(F.LOG, bytes(blob))]


def test_each_side_sends_at_most_what_the_other_receives():
    # A board on the ESP32's REPL UART receives into a 260-byte ring: it announces
    # a small receive limit and still sends 4 kB frames (docs/protocol.md §3).
    p = Pair(max_payload=4096, board_rx=96)
    p.connect()
    assert p.host.peer[F.T_MAX_PAYLOAD] == F.u16_bytes(96)
    assert p.board.peer[F.T_MAX_PAYLOAD] == F.u16_bytes(4096)
    assert p.host.tx_limit == 96 and p.board.tx_limit == 4096
    blob = bytes((i * 7 + 1) & 0xFF for i in range(4096))
    assert p.board.send(F.LOG, blob)
    assert p.host.send(F.VERDICT, bytes(96))
    err = None
    try:
        p.host.send(F.VERDICT, bytes(97))
    except ValueError as e:
        err = e
    assert err is not None
    p.run(50)
    assert p.host_got == [(F.LOG, blob)]
    assert p.board_got == [(F.VERDICT, bytes(96))]
    assert p.board.counter("oversized_frames") == 0


def test_frame_over_the_announced_receive_limit_is_counted_and_skipped():
    for size in (97, 150, 300):  # inside and beyond the board's 192-byte receive buffer
        p = Pair(max_payload=512, board_rx=96)
        p.connect()
        p.host.tx_limit = 512  # a host that ignores what the board announced
        assert p.host.send(F.VERDICT, bytes(size))
        p.run(20)
        assert p.board_got == [], size
        assert p.board.counter("oversized_frames") >= 1, size


def test_hello_reject_reaches_a_board_with_a_small_receive_limit():
    # Control frames are not bound by the announced limit: a HELLO_REJECT's text
    # (up to 100 bytes) must still reach a board that receives 96-byte payloads.
    p = Pair(board_rx=96)
    text = "board not paired: " + "x" * 90
    p.host.accept_hello = lambda info: (F.REJECT_UNKNOWN_BOARD, text)
    reasons = []
    p.board.on_down = lambda why: reasons.append(why)
    p.run(300)
    assert p.board.state == REFUSED and text[:100] in reasons[0]


def test_stale_ack_in_a_retransmitted_frame_is_not_an_error():
    # A go-back-N retransmission is the frame as first built: its ack byte is the
    # one of that moment. Meanwhile the peer's window moved on; that old ack is no
    # damage (seen as bad_ack 2 on a board in the REPL-ring test, finding 7).
    p = Pair(max_payload=256)
    p.connect()
    assert p.host.send(F.VERDICT, b"h")  # built with ack 0
    p.to_board.clear()  # lost on the way
    assert p.board.send(F.LOG, b"b1")
    p.run(1000)  # the host acknowledges b1, then resends its frame (still ack 0)
    assert p.host.counter("retransmits") >= 1
    assert p.board_got == [(F.VERDICT, b"h")]
    assert p.host_got == [(F.LOG, b"b1")]
    assert p.board.counter("bad_ack") == 0


def test_oversized_payload_refused_by_sender():
    p = Pair(max_payload=256)
    p.connect()
    err = None
    try:
        p.board.send(F.LOG, bytes(257))
    except ValueError as e:
        err = e
    assert err is not None


def test_lost_frame_is_retransmitted_and_delivered_once():
    p = Pair()
    p.connect()
    dropped = []

    def drop_first_data(chunk):
        if not dropped and b"lost?" in _decode_payloads(chunk):
            dropped.append(chunk)
            return b""
        return chunk

    p.board.send(F.LOG, b"lost?")
    p.run(2000, to_host_filter=drop_first_data)
    assert dropped
    assert p.host_got == [(F.LOG, b"lost?")]
    assert p.board.counter("retransmits") >= 1


def test_lost_ack_causes_duplicate_which_is_suppressed():
    p = Pair()
    p.connect()
    p.board.send(F.LOG, b"once")
    # Every acknowledgement (ACKs and heartbeats) is lost for longer than the
    # retransmission timer, so the board sends the frame again.
    p.run(p.board.rto_ms + 100, to_board_filter=lambda c: b"")
    p.run(1000)
    assert p.host_got == [(F.LOG, b"once")]
    assert p.board.counter("retransmits") >= 1
    assert p.host.counter("duplicates") >= 1
    assert p.board.idle()


def test_corrupted_frame_is_counted_nakked_and_recovered():
    p = Pair()
    p.connect()
    errors = []
    p.host.on_error = lambda name, detail: errors.append(name)
    hit = [False]

    def flip(chunk):
        if not hit[0] and len(chunk) > 20:
            hit[0] = True
            b = bytearray(chunk)
            b[10] ^= 0x40
            return bytes(b)
        return chunk

    p.board.send(F.LOG, b"x" * 100)
    p.run(2000, to_host_filter=flip)
    assert p.host_got == [(F.LOG, b"x" * 100)]
    assert "crc_errors" in errors or "malformed_frames" in errors


def test_garbage_between_frames_is_counted_and_link_carries_on():
    p = Pair()
    p.connect()
    p.host.feed(b"\x13\x37garbage\xff\xfe\x00")
    p.host.feed(bytes(range(1, 200)) + b"\x00")
    assert p.host.counter("malformed_frames") + p.host.counter("crc_errors") >= 2
    p.board.send(F.LOG, b"after noise")
    p.run(100)
    assert p.host_got == [(F.LOG, b"after noise")]
    assert p.host.state == UP


def test_heartbeats_keep_the_link_up_and_silence_drops_it():
    p = Pair(heartbeat_ms=100)
    p.connect()
    p.run(3000)
    assert p.board.state == UP and p.host.state == UP
    assert p.host.counter("rx_frames") >= 25  # ~30 heartbeats in 3 s
    # Cut the line: nothing is delivered either way.
    p.run(3000, to_host_filter=lambda c: b"", to_board_filter=lambda c: b"")
    assert any(e.startswith("host down") for e in p.events)
    assert any(e.startswith("board down") for e in p.events)
    # Restore: the board says HELLO again and both sides are back.
    p.run(1500)
    assert p.board.state == UP and p.host.state == UP
    assert p.host.counter("sessions") == 2


def test_retransmission_limit_reports_loss():
    p = Pair(heartbeat_ms=1000)
    p.connect()
    p.board.send(F.LOG, b"into the void")
    # Only the host->board direction works: the board never hears an ACK.
    p.run(20000, to_host_filter=lambda c: b"")
    assert any("board down: no acknowledgement" in e or "board down: nothing received" in e
               for e in p.events), p.events


def test_host_restart_makes_board_hello_again():
    p = Pair()
    p.connect()
    # A new host process knows nothing of the session.
    fresh = HostLink(p.to_board.append, heartbeat_ms=100, clock=p.clock, max_payload=1024)
    ups = []
    fresh.on_up = lambda info: ups.append(info)
    p.host = fresh
    p.run(1500)
    assert ups and fresh.state == UP and p.board.state == UP
    assert fresh.counter("no_session") >= 1


def test_board_restart_starts_new_session_at_host():
    p = Pair()
    p.connect()
    p.board.send(F.LOG, b"before")
    p.run(50)
    p.board.reset("watchdog")
    p.run(1000)
    assert p.board.state == UP and p.host.state == UP
    assert p.host.counter("sessions") == 2
    p.board.send(F.LOG, b"after")
    p.run(50)
    assert p.host_got == [(F.LOG, b"before"), (F.LOG, b"after")]


def test_wrong_protocol_version_is_refused_by_name():
    p = Pair()
    reasons = []
    p.board.on_down = lambda why: reasons.append(why)

    def bump_version(chunk):
        # Rewrite the board's frames as protocol version 9 (CRC recomputed).
        return _rewrite(chunk, lambda body: bytes([9]) + body[1:])

    p.run(500, to_host_filter=bump_version)
    assert p.board.state == REFUSED
    assert p.host.state == DOWN
    assert p.host.counter("bad_version") >= 1
    assert reasons and "protocol version 9" in reasons[0]


def test_hello_versions_outside_host_range_refused():
    p = Pair()
    p.board._hello_items = {F.T_BOARD_ID: b"\x01"}
    reasons = []
    p.board.on_down = lambda why: reasons.append(why)
    # A board that announces it only speaks versions 2..3 (header still v1).
    p.run(300, to_host_filter=lambda c: _rewrite(c, _versions_2_3))
    assert p.board.state == REFUSED and reasons
    assert "host speaks protocol" in reasons[0]


def test_unknown_board_can_be_refused_by_host_policy():
    p = Pair()
    p.host.accept_hello = lambda info: (F.REJECT_UNKNOWN_BOARD, "board not paired")
    reasons = []
    p.board.on_down = lambda why: reasons.append(why)
    p.run(300)
    assert p.board.state == REFUSED and "board not paired" in reasons[0]


# --- helpers: look inside frames the way a line analyser would --------------------

def _bodies(chunk):
    from comptoir_link.cobs import Decoder

    d = Decoder(9000)
    out = []
    for b in chunk:
        r = d.feed_byte(b)
        if r >= 0:
            out.append(bytes(d.buf[:r]))
    return out


def _frame_type(chunk):
    bodies = _bodies(chunk)
    return bodies[0][1] if bodies else -1


def _decode_payloads(chunk):
    return b"".join(body[5:-4] for body in _bodies(chunk))


def _rewrite(chunk, fn):
    from comptoir_link.cobs import encode_into, max_encoded_len
    from comptoir_link.compat import crc32

    out = b""
    for body in _bodies(chunk):
        new = fn(body[:-4])
        c = crc32(new) & 0xFFFFFFFF
        new = new + bytes((c & 0xFF, (c >> 8) & 0xFF, (c >> 16) & 0xFF, c >> 24))
        enc = bytearray(max_encoded_len(len(new)))
        k = encode_into(new, len(new), enc)
        out += b"\x00" + bytes(enc[:k]) + b"\x00"
    return out


def _versions_2_3(body):
    if body[1] != F.HELLO:
        return body
    items = F.tlv_parse(body[5:])
    items[F.T_VERSIONS] = b"\x02\x03"
    tlv = bytearray(200)
    o = 0
    for tag in items:
        o = F.tlv_put(tlv, o, tag, items[tag])
    return body[:5] + bytes(tlv[:o])


def test_refused_board_waits_before_its_next_attempt():
    """docs/protocol.md §5 (issue 19): after HELLO_REJECT the next HELLO, with a new nonce,
    comes 5 s later, not at the repeat already scheduled (0.28 s; this failed before)."""
    p = Pair()
    p.host.accept_hello = lambda info: (F.REJECT_UNKNOWN_BOARD, "board not paired")
    hellos = []

    def spy(chunk):
        if _frame_type(chunk) == F.HELLO:
            hellos.append((p.clock.t, _bodies(chunk)[0][2]))
        return chunk

    p.run(20, to_host_filter=spy)
    assert p.board.state == REFUSED and len(hellos) == 1
    p.run(4900, to_host_filter=spy)
    assert len(hellos) == 1, hellos
    p.run(200, to_host_filter=spy)
    assert len(hellos) == 2 and 5000 <= hellos[1][0] - hellos[0][0] <= 5010, hellos
    assert hellos[1][1] != hellos[0][1]  # a new attempt: a new session byte
    p.host.accept_hello = None  # the host was upgraded: the next attempt is accepted
    p.run(5100)
    assert p.board.state == UP


def test_hello_repeat_interval_is_the_documented_formula():
    """§5: repeats of one attempt every 100 ms + 2 x line time of 192 bytes + 150 ms (284 ms
    at 115 200 baud), same nonce and session byte."""
    p = Pair()
    sent = []
    p.board._write = lambda chunk: sent.append((p.clock.t, bytes(chunk)))
    for _ in range(1000):
        p.board.poll()
        p.clock.t += 1
    times = [t for t, c in sent if _frame_type(c) == F.HELLO]
    assert [times[i + 1] - times[i] for i in range(len(times) - 1)] == [284, 284, 284], times
    assert p.board.hello_interval_ms == 100 + 2 * ((192 * 10000 + 115199) // 115200) + 150
    assert len({_bodies(c)[0] for t, c in sent}) == 1  # the same HELLO each time
