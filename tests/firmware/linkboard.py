# The real reader application (firmware/app.py) on a fake board with a fake clock, and the
# runner of the link conformance vectors (conformance/link/*.json, docs/conformance.md).
# Written for both interpreters: the same vectors run against the firmware under CPython
# and on the MicroPython unix port (tests/firmware/test_link_vectors.py).
import gc
import json

from comptoir_link import frames as F
from comptoir_link.cobs import Decoder, encode_into, max_encoded_len
from comptoir_link.compat import crc32

SCHEMA = "comptoir-link-vector/1"
FREE_HEAP = 50000  # what the fake board reports, so STATUS is the same everywhere


class FakeUart:
    def __init__(self):
        self.rx = b""
        self.tx = []

    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        if not n:
            return None
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n

    def write(self, data):
        self.tx.append(bytes(data))
        return len(data)


class FakeBoard:
    """What app.Reader needs from the board layer, with a clock the runner moves."""

    log = None

    def __init__(self, cfg):
        self.name = cfg["name"]
        self.board_id = bytes.fromhex(cfg["board_id"])
        self.definition = {"name": self.name,
                           "uarts": {"host": {"baud": cfg["baud"],
                                              "repl": cfg.get("repl", False)}},
                           "link": {"max_payload": cfg["max_payload"]}}
        self.pair_key = bytes.fromhex(cfg["pair_key"]) if cfg.get("pair_key") else None
        self._random = bytes.fromhex(cfg["random"])
        self.t = 0
        self.host = FakeUart()
        self.outputs = []
        self.shown = []

    def uart(self, role):
        return self.host

    def pn532_spec(self):
        return None

    def output(self, name, value):
        self.outputs.append((name, value))

    def show(self, text):
        self.shown.append(text)

    def random_bytes(self, n):
        if len(self._random) < n:
            raise ValueError("the vector's random bytes ran out")
        out, self._random = self._random[:n], self._random[n:]
        return out

    def ticks_ms(self):
        return self.t

    def ticks_diff(self, a, b):
        return a - b

    def free_heap(self):
        return FREE_HEAP

    def wait(self, uarts, ms):
        pass


def start(cfg):
    import app

    board = FakeBoard(cfg)
    return board, app.Reader(board)


def encode_frame(ftype, session, seq, ack, payload=b"", version=1):
    """One frame as it goes on the line: 00 COBS(body) 00 (docs/protocol.md §2-3)."""
    body = bytes((version, ftype, session, seq, ack)) + bytes(payload)
    c = crc32(body) & 0xFFFFFFFF
    body += bytes((c & 0xFF, (c >> 8) & 0xFF, (c >> 16) & 0xFF, c >> 24))
    out = bytearray(max_encoded_len(len(body)))
    k = encode_into(body, len(body), out)
    return b"\x00" + bytes(out[:k]) + b"\x00"


_DECODER = []  # one decoder for every call: the MicroPython heap is 100 KB


def decode_frames(data):
    """The frame bodies (CRC checked and removed) in a stretch of line bytes."""
    if not _DECODER:
        _DECODER.append(Decoder(F.MAX_PAYLOAD_LIMIT + F.OVERHEAD))
    d = _DECODER[0]
    d.reset()
    out = []
    for b in data:
        r = d.feed_byte(b)
        if r >= 9:
            body = bytes(d.buf[:r])
            c = crc32(body[:-4]) & 0xFFFFFFFF
            crc = body[-4] | (body[-3] << 8) | (body[-2] << 16) | (body[-1] << 24)
            out.append(body[:-4] if c == crc else b"BADCRC")
        elif r >= 0:
            out.append(b"SHORT")
    return out


def describe(body):
    """A frame body as the vectors write it."""
    return {"type": body[1], "session": body[2], "seq": body[3], "ack": body[4],
            "payload": body[5:].hex()}


def run_step(board, reader, step):
    """Advance the clock, deliver the host's bytes, let the board run until it has read
    them (and once more); return what it wrote and what it showed."""
    board.t += step.get("advance_ms", 0)
    for f in step.get("host_sends", ()):
        board.host.rx += bytes.fromhex(f["wire"])
    reader.step(0)
    while board.host.rx:
        reader.step(0)
    wrote = b"".join(board.host.tx)
    board.host.tx = []
    shown = board.shown
    board.shown = []
    return wrote, shown


def matches(want, body):
    if want.get("compare") == "header":  # values the board measures (STATUS): shape only
        got = describe(body)
        return all(got[k] == want[k] for k in ("type", "session", "seq", "ack")) and len(
            got["payload"]) == len(want["payload"])
    return describe(body) == {k: want[k] for k in ("type", "session", "seq", "ack", "payload")}


def run_vector(doc):
    """Run one link vector against the firmware; the list of mismatches (empty: passes)."""
    if doc.get("schema") != SCHEMA:
        return ["schema %r" % doc.get("schema")]
    gc.collect()  # the previous vector's reader and its buffers
    board, reader = start(doc["board"])
    problems = []
    for i, step in enumerate(doc["steps"]):
        wrote, shown = run_step(board, reader, step)
        got = decode_frames(wrote)
        want = step["board_sends"]
        if len(got) != len(want) or not all(matches(w, g) for w, g in zip(want, got)):
            problems.append("step %d: board sent %s, expected %s" % (
                i, [describe(g) if len(g) >= 5 else g for g in got],
                [{k: w[k] for k in ("type", "seq", "ack")} for w in want]))
        if "board_shows" in step and shown != step["board_shows"]:
            problems.append("step %d: board showed %r, expected %r" % (
                i, shown, step["board_shows"]))
    return problems


def load(path):
    with open(path) as f:
        return json.load(f)
