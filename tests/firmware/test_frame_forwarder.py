# The frame forwarder (firmware/frame_forwarder.py) against a fake camera and a
# fake link: exact chunk bytes, skipping, the frame-rate cap, yielding to NFC.
# Runs under CPython (pytest) and the MicroPython unix port (100K heap).
from frame_forwarder import (
    ABANDONED,
    CHUNKS,
    QR_TEXTS,
    SENT,
    SKIPPED_SAME,
    SKIPPED_STILL,
    FrameForwarder,
)

from comptoir_link import frames as F


class FakeCam:
    def __init__(self, kind=F.OBJ_FRAME_GRAY, width=16, height=12):
        self.kind = kind
        self.width = width
        self.height = height
        self.queue = []
        self.held = None
        self.releases = 0

    def capture(self):
        if self.held is not None:
            self.release()
        if not self.queue:
            return 0
        self.held = self.queue.pop(0)
        return len(self.held)

    def frame(self):
        return memoryview(self.held) if self.held is not None else None

    def read(self, offset, buf):
        n = min(len(buf), len(self.held) - offset)
        if n <= 0:
            return 0
        buf[:n] = self.held[offset : offset + n]
        return n

    def release(self):
        if self.held is not None:
            self.held = None
            self.releases += 1


class FakeLink:
    def __init__(self, tx_limit=64, window=2):
        self.tx_limit = tx_limit
        self.window = window
        self.n_out = 0
        self.sent = []

    def can_send(self):
        return self.n_out < self.window

    def send(self, ftype, payload, n=-1):
        if not self.can_send():
            return False
        self.sent.append((ftype, bytes(payload[:n])))
        self.n_out += 1
        return True


class Clock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


def u16(b, i):
    return b[i] | (b[i + 1] << 8)


def u32(b, i):
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)


def gray(w, h, seed):
    # A deterministic pattern: a "QR-like" checkerboard of 2x2 blocks per seed.
    out = bytearray(w * h)
    for y in range(h):
        for x in range(w):
            out[y * w + x] = 20 if ((x // 2) * 7 + (y // 2) * 13 + seed * 5) % 3 == 0 else 230
    return out


def pump(fwd, link, steps=200, ack=True):
    """Run steps, the host acknowledging every frame at once."""
    for _ in range(steps):
        fwd.step(link, True)
        if ack:
            link.n_out = 0


def objects(link):
    """Reassemble what was sent: {object id: (kind, bytes)}; checks offsets."""
    got = {}
    for ftype, p in link.sent:
        if ftype != F.OBJECT_CHUNK:
            continue
        kind, oid, total, off = p[0], u16(p, 1), u32(p, 3), u32(p, 7)
        data = p[11:]
        buf = got.get(oid)
        if buf is None:
            assert off == 0
            buf = got[oid] = [kind, total, bytearray()]
        assert off == len(buf[2]) and total == buf[1] and kind == buf[0]
        buf[2] += data
    return {k: (v[0], bytes(v[2])) for k, v in got.items() if len(v[2]) == v[1]}


def make(cam, **kw):
    kw.setdefault("max_payload", 64)
    kw.setdefault("clock", Clock())
    kw.setdefault("max_fps", 0)  # no cap unless a test sets one
    return FrameForwarder(cam, **kw)


def test_gray_frame_chunks_are_exact():
    cam = FakeCam(width=16, height=12)
    frame = gray(16, 12, 1)
    cam.queue.append(frame)
    link = FakeLink(tx_limit=64)
    fwd = make(cam)
    pump(fwd, link)
    objs = objects(link)
    assert len(objs) == 1
    oid, (kind, data) = list(objs.items())[0]
    assert kind == F.OBJ_FRAME_GRAY and oid == 0x8000
    assert data == bytes((16, 0, 12, 0)) + bytes(frame)
    # 196 bytes in chunks of 64 - 11 = 53 data bytes: 4 chunks, the last one short.
    assert [len(p) - 11 for _, p in link.sent] == [53, 53, 53, 37]
    assert fwd.stats[SENT] == 1 and fwd.stats[CHUNKS] == 4 and not fwd.busy
    assert cam.releases == 1


def test_jpeg_frame_is_sent_as_is():
    cam = FakeCam(kind=F.OBJ_FRAME_JPEG)
    frame = bytes((0xFF, 0xD8)) + bytes(range(256)) * 2 + bytes((0xFF, 0xD9))
    cam.queue.append(frame)
    link = FakeLink(tx_limit=200)
    fwd = make(cam, max_payload=200)
    pump(fwd, link)
    assert list(objects(link).values()) == [(F.OBJ_FRAME_JPEG, frame)]
    assert link.sent[0][1][3:7] == bytes((len(frame) & 0xFF, len(frame) >> 8, 0, 0))


def test_chunks_follow_the_line_time_budget_and_the_link_limit():
    cam = FakeCam()
    fwd = make(cam, max_payload=4096, baud=115200, chunk_ms=50)
    assert fwd.chunk_data == 576 - 11
    fwd = make(cam, max_payload=4096, baud=921600, chunk_ms=50)
    assert fwd.chunk_data == 4096 - 11
    cam.queue.append(gray(40, 30, 2))
    link = FakeLink(tx_limit=100)  # the peer's smaller limit wins
    pump(fwd, link)
    assert all(len(p) <= 100 for _, p in link.sent)
    assert fwd.stats[SENT] == 1


def test_one_chunk_per_step_and_never_without_a_free_slot():
    cam = FakeCam()
    cam.queue.append(gray(16, 12, 1))
    link = FakeLink(tx_limit=64, window=2)
    fwd = make(cam, reserve=1)
    fwd.step(link, True)
    assert len(link.sent) == 1
    fwd.step(link, True)  # one frame in flight, one slot kept for NFC: wait
    assert len(link.sent) == 1 and fwd.busy
    link.n_out = 0
    fwd.step(link, True)
    assert len(link.sent) == 2


def test_yields_when_told_and_sends_nothing():
    cam = FakeCam()
    cam.queue.append(gray(16, 12, 1))
    link = FakeLink()
    fwd = make(cam)
    for _ in range(10):
        assert not fwd.step(link, False)
    assert not link.sent and len(cam.queue) == 1  # not even captured


def test_identical_frame_is_never_sent_twice():
    cam = FakeCam()
    f = gray(16, 12, 3)
    cam.queue.extend((f, bytearray(f), bytearray(f)))
    link = FakeLink()
    fwd = make(cam)
    pump(fwd, link)
    assert fwd.stats[SENT] == 1 and fwd.stats[SKIPPED_SAME] == 2
    assert len(objects(link)) == 1


def noisy(frame, amp):
    out = bytearray(frame)
    for i in range(len(out)):
        v = out[i] + ((i * 37) % (2 * amp + 1)) - amp
        out[i] = 0 if v < 0 else 255 if v > 255 else v
    return out


def test_still_scene_is_sent_until_the_host_answers_then_skipped():
    cam = FakeCam(width=64, height=48)
    f = gray(64, 48, 4)
    link = FakeLink(tx_limit=1024)
    fwd = make(cam, max_payload=1024)
    cam.queue.append(f)
    pump(fwd, link)
    # Before a verdict, a new exposure of the same scene goes out (it may be sharper).
    cam.queue.append(noisy(f, 6))
    pump(fwd, link)
    assert fwd.stats[SENT] == 2
    fwd.on_verdict(fwd.last_sent_id)
    cam.queue.append(noisy(f, 5))
    cam.queue.append(noisy(f, 7))
    pump(fwd, link)
    assert fwd.stats[SENT] == 2 and fwd.stats[SKIPPED_STILL] == 2
    # Another code in the same place differs on the grid: sent, and it re-arms.
    cam.queue.append(gray(64, 48, 5))
    pump(fwd, link)
    assert fwd.stats[SENT] == 3
    cam.queue.append(noisy(gray(64, 48, 5), 5))
    pump(fwd, link)
    assert fwd.stats[SENT] == 4  # no verdict for the new scene yet


def test_verdict_for_someone_else_does_not_settle():
    cam = FakeCam()
    link = FakeLink()
    fwd = make(cam)
    cam.queue.append(gray(16, 12, 1))
    pump(fwd, link)
    fwd.on_verdict(0x0001)  # an NFC object id (top bit clear)
    cam.queue.append(noisy(gray(16, 12, 1), 3))
    pump(fwd, link)
    assert fwd.stats[SENT] == 2


def test_jpeg_still_scene_compared_by_length():
    cam = FakeCam(kind=F.OBJ_FRAME_JPEG)
    link = FakeLink(tx_limit=256)
    fwd = make(cam, max_payload=256, jpeg_tolerance=2)
    cam.queue.append(bytes(1000))
    pump(fwd, link)
    fwd.on_verdict(fwd.last_sent_id)
    cam.queue.append(bytes(1010))  # 1 %: the same scene re-encoded
    cam.queue.append(bytes(1100))  # 10 %: something changed
    pump(fwd, link)
    assert fwd.stats[SKIPPED_STILL] == 1 and fwd.stats[SENT] == 2


def test_frame_rate_cap():
    cam = FakeCam()
    clock = Clock()
    link = FakeLink(tx_limit=512)
    fwd = make(cam, max_payload=512, max_fps=5, clock=clock)
    for i in range(20):
        cam.queue.append(gray(16, 12, i))
    sent = 0
    for _ in range(100):  # one second in 10 ms steps
        if fwd.step(link, True):
            sent += 1
        link.n_out = 0
        clock.t += 10
    assert sent == 5


def test_abandon_mid_frame_then_a_new_id():
    cam = FakeCam()
    link = FakeLink(tx_limit=64)
    fwd = make(cam)
    cam.queue.append(gray(16, 12, 1))
    fwd.step(link, True)
    link.n_out = 0
    first = fwd.object_id
    assert fwd.busy
    fwd.abandon()  # an NFC tap starts
    assert not fwd.busy and fwd.stats[ABANDONED] == 1 and cam.held is None
    cam.queue.append(gray(16, 12, 1))
    pump(fwd, link)
    objs = objects(link)
    assert first not in objs and len(objs) == 1
    # The abandoned frame was never completed: the same picture is sent in full.
    assert fwd.stats[SENT] == 1


def test_verdict_during_a_frame_abandons_it():
    cam = FakeCam()
    link = FakeLink(tx_limit=64)
    fwd = make(cam)
    cam.queue.append(gray(16, 12, 1))
    pump(fwd, link)
    cam.queue.append(gray(16, 12, 2))
    fwd.step(link, True)
    assert fwd.busy
    fwd.on_verdict(fwd.last_sent_id)
    assert not fwd.busy


def test_ids_wrap_within_the_camera_range():
    cam = FakeCam()
    fwd = make(cam, first_id=0xFFFE)
    assert [fwd._next_id() for _ in range(3)] == [0xFFFE, 0xFFFF, 0x8000]


class FakeDecoder:
    def __init__(self, texts):
        self.texts = texts

    def decode(self, cam):
        return self.texts.pop(0)


def test_on_board_decoder_sends_each_text_once():
    cam = FakeCam()
    for i in range(8):
        cam.queue.append(gray(16, 12, i))
    dec = FakeDecoder([b"CV1:AAA", b"CV1:AAA", None, b"CV1:BBB", None, None, None, b"CV1:BBB"])
    link = FakeLink()
    fwd = make(cam, decoder=dec)
    pump(fwd, link)
    texts = [p[2:] for t, p in link.sent if t == F.QR_TEXT]
    assert texts == [b"CV1:AAA", b"CV1:BBB", b"CV1:BBB"]
    assert not [t for t, _ in link.sent if t == F.OBJECT_CHUNK]
    assert fwd.stats[QR_TEXTS] == 3 and cam.releases == 8


def test_a_camera_with_nothing_new_for_a_while_re_arms_sending():
    # Issue 15 (`make run`): the next phone's QR at the same place, a JPEG of about the
    # same length, was withheld as "still" although the host never read it.
    cam = FakeCam(kind=F.OBJ_FRAME_JPEG)
    clock = Clock()
    link = FakeLink(tx_limit=256)
    fwd = make(cam, max_payload=256, jpeg_tolerance=2, clock=clock)
    cam.queue.append(bytes(1000))
    pump(fwd, link)
    fwd.on_verdict(fwd.last_sent_id)
    clock.t += 200
    pump(fwd, link)  # the phone is taken away: the camera has nothing new
    cam.queue.append(bytes([1]) * 1005)  # at once: still the same scene
    pump(fwd, link)
    assert fwd.stats[SKIPPED_STILL] == 1 and fwd.stats[SENT] == 1
    clock.t += 600
    pump(fwd, link)  # nothing new for 0.6 s
    cam.queue.append(bytes([2]) * 1005)  # another phone, same place, same length
    pump(fwd, link)
    assert fwd.stats[SENT] == 2
