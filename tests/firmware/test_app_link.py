# The reader application's answers on the link (issue 19), on a fake board: a VERDICT is shown
# only for an object the board sent; STATUS's minimum free heap includes the moment it is built.
import linkboard

from comptoir_link import frames as F

CFG = {"name": "t", "board_id": "c0a70001", "baud": 115200, "max_payload": 1024,
       "pair_key": None, "random": "11" * 64}


class _OneTap:
    """Stands in for NfcTask: one presentation object, sent at the first step."""

    busy = False

    def __init__(self):
        self.sent = []

    def step(self, link, object_id):
        if self.sent or not link.can_send():
            return False
        link.send(F.OBJECT_CHUNK, bytes((1,)) + F.u16_bytes(object_id) + b"\x04\0\0\0\0\0\0\0abcd")
        self.sent.append(object_id)
        return True

    def on_session(self):
        pass


def _session(cfg=CFG):
    board, reader = linkboard.start(cfg)
    wrote, _ = linkboard.run_step(board, reader, {})
    (hello,) = linkboard.decode_frames(wrote)
    items = F.tlv_parse(hello[5:])
    ack = bytes((F.T_NONCE, 8)) + items[F.T_NONCE] + bytes((F.T_HEARTBEAT_MS, 2, 0xE8, 0x03))
    session = hello[2]
    linkboard.run_step(board, reader, {"host_sends": [
        {"wire": linkboard.encode_frame(F.HELLO_ACK, session, 0, 0, ack).hex()}]})
    assert reader.link.state == 1
    return board, reader, session


def _verdict(board, reader, session, seq, oid):
    payload = F.u16_bytes(oid) + bytes((F.V_ACCEPTED,)) + F.u16_bytes(0) + b"ACCEPTE"
    ack = reader.link.tx_seq  # everything the board sent so far
    wrote, shown = linkboard.run_step(board, reader, {"host_sends": [
        {"wire": linkboard.encode_frame(F.VERDICT, session, seq, ack, payload).hex()}]})
    return linkboard.decode_frames(wrote), shown


def test_verdict_for_an_object_sent_is_shown_and_another_is_not():
    board, reader, session = _session()
    reader.nfc = _OneTap()
    wrote, _ = linkboard.run_step(board, reader, {})
    (chunk,) = linkboard.decode_frames(wrote)
    assert chunk[1] == F.OBJECT_CHUNK and reader.nfc.sent == [1]
    # Object 2 was never sent: ERROR 3, nothing shown (before issue 19 it was shown).
    out, shown = _verdict(board, reader, session, 0, 2)
    assert [b[1] for b in out] == [F.ERROR] and out[0][5:7] == b"\x03\x00" and shown == []
    out, shown = _verdict(board, reader, session, 1, 1)
    assert shown == ["ACCEPTE"]
    assert ("led_ok", 1) in board.outputs


def test_camera_verdict_without_a_camera_is_refused():
    board, reader, session = _session()
    out, shown = _verdict(board, reader, session, 0, 0x8000)
    assert [b[1] for b in out] == [F.ERROR] and shown == []


def test_status_min_free_heap_is_never_above_free_heap():
    """Fails before issue 19: the minimum was only updated at the end of a loop step, so a
    STATUS built while the heap was lower than ever reported min above free."""
    board, reader, session = _session()
    heaps = [50000]
    board.free_heap = lambda: heaps[-1]
    reader.min_free = 50000
    heaps.append(42000)  # the heap is lower than ever, right now
    wrote, _ = linkboard.run_step(board, reader, {"host_sends": [
        {"wire": linkboard.encode_frame(F.STATUS_REQUEST, session, 0, 0).hex()}]})
    status = [b for b in linkboard.decode_frames(wrote) if b[1] == F.STATUS][0]
    vals = [int.from_bytes(status[5 + i: 9 + i], "little") for i in range(0, len(status) - 5, 4)]
    assert vals[0] == 42000 and vals[1] <= vals[0]
    assert len(vals) == 19


class _Frames:
    """Stands in for FrameForwarder: sends camera frames 0x8000, 0x8001, ... one per step."""

    busy = False

    def __init__(self):
        self.object_id = -1
        self.last_sent_id = -1
        self.verdicts = []

    def step(self, link, may_send=True):
        i = 0x8000 if self.last_sent_id < 0 else self.last_sent_id + 1
        if not link.can_send() or i >= 0x8000 + 70:
            return False
        link.send(F.OBJECT_CHUNK, bytes((2,)) + F.u16_bytes(i) + b"\x01\0\0\0\0\0\0\0x")
        self.last_sent_id = i
        return True

    def on_verdict(self, oid):
        self.verdicts.append(oid)

    def abandon(self):
        pass


def test_camera_verdicts_only_for_frames_sent_recently():
    board, reader, session = _session()
    reader.fwd = _Frames()
    seq = 0
    for _ in range(70):  # 70 frames: 0x8000 .. 0x8045, each acknowledged
        linkboard.run_step(board, reader, {})
        linkboard.run_step(board, reader, {"host_sends": [
            {"wire": linkboard.encode_frame(F.ACK, session, 0, reader.link.tx_seq).hex()}]})
    last = reader.fwd.last_sent_id
    assert last == 0x8045
    for oid, shown_ok in ((last, True), (last - 63, True), (last - 64, False), (last + 1, False),
                          (0x7FFF, False)):
        out, shown = _verdict(board, reader, session, seq, oid)
        seq += 1
        assert (shown == ["ACCEPTE"]) is shown_ok, (hex(oid), out, shown)
        if not shown_ok:
            assert F.ERROR in [b[1] for b in out]
    assert reader.fwd.verdicts == [last, last - 63]


def test_bench_frames_stay_intact_when_an_error_is_sent_meanwhile():
    """The link benchmark sends from the application's payload buffer, which ERROR and STATUS
    also build in: an ERROR between two BENCH_DATA frames wrote its text over the filler
    (seen on the HIL twin target, an absent PN532's errors). Every BENCH_DATA carries its
    index and the filler docs/protocol.md gives, whatever was sent between."""
    board, reader, session = _session()
    size = reader.link.tx_limit  # the largest payload of this session
    request = F.u16_bytes(3) + F.u16_bytes(size)
    wrote, _ = linkboard.run_step(board, reader, {"host_sends": [
        {"wire": linkboard.encode_frame(F.BENCH_REQUEST, session, 0, 0, request).hex()}]})
    frames = linkboard.decode_frames(wrote)
    host_seq = 1
    for _ in range(10):
        if any(b[1] == F.BENCH_DONE for b in frames):
            break
        # An unhandled frame type: the board answers ERROR 3 from the same buffer.
        ack = reader.link.tx_seq
        wrote, _ = linkboard.run_step(board, reader, {"host_sends": [
            {"wire": linkboard.encode_frame(0x7E, session, host_seq, ack).hex()}]})
        host_seq += 1
        frames += linkboard.decode_frames(wrote)
    errors = [b for b in frames if b[1] == F.ERROR]
    data = [b[5:] for b in frames if b[1] == F.BENCH_DATA]
    assert errors, "the test must put an ERROR between the bench's frames"
    filler = bytes((i * 7 + 1) & 0xFF for i in range(2, size))
    assert [F.u16(d[0:2]) for d in data] == [0, 1, 2]
    assert all(len(d) == size and d[2:] == filler for d in data)
