"""Link conformance vectors (conformance/link/*.json, schema `comptoir-link-vector/1`).

Each case is a board configuration (its id, name, pairing key, the random bytes it draws, in
order) and steps: the time that passes, the frames the host sends, and the frames the board
must answer during that step (and what its display must show). They are written by running
the real firmware (firmware/app.py and firmware/comptoir_link, on a fake board and clock,
`tests/firmware/linkboard.py`), and each case checks that the answers are the ones
docs/protocol.md describes before it is kept. The same runner replays them on CPython and on
the MicroPython unix port (tests/firmware/test_link_vectors.py). docs/conformance.md says how
a second implementation (a board, or a host's view of one) uses them.

Needs the repository checkout (it imports the firmware tree and its test helpers).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
for _p in (ROOT / "firmware", ROOT / "tests" / "firmware"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import linkboard  # noqa: E402

from comptoir_link import frames as F  # noqa: E402
from comptoir_link import pairing  # noqa: E402

SCHEMA = linkboard.SCHEMA
BOARD_ID = bytes.fromhex("c0a70019")
PAIR_KEY = bytes(range(32))
HOST_NONCE = bytes.fromhex("4f4e4345484f5354")


def _random(label: str, n: int = 96) -> bytes:
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"comptoir-link-vector:{label}:{i}".encode()).digest()
        i += 1
    return out[:n]


class LinkCase:
    def __init__(self, name: str, description: str, *, pair_key: bytes | None = None,
                 repl: bool = False) -> None:
        self.name = name
        self.description = description
        self.cfg: dict[str, Any] = {
            "name": "vector-board",
            "board_id": BOARD_ID.hex(),
            "baud": 115200,
            "max_payload": 1024,
            "pair_key": pair_key.hex() if pair_key else None,
            "random": _random(name).hex(),
        }
        if repl:  # the host link is the REPL's UART: the board receives 96-byte payloads
            self.cfg["repl"] = True
        self.board, self.reader = linkboard.start(self.cfg)
        self.steps: list[dict[str, Any]] = []
        self.session = 0
        self.nonce = b""

    # The host's frames.
    def frame(self, ftype: int, seq: int = 0, ack: int = 0, payload: bytes = b"", *,
              session: int | None = None, version: int = 1, note: str = "") -> dict[str, Any]:
        session = self.session if session is None else session
        out = {"type": ftype, "session": session, "seq": seq, "ack": ack,
               "payload": payload.hex(),
               "wire": linkboard.encode_frame(ftype, session, seq, ack, payload, version).hex()}
        if note:
            out["note"] = note
        return out

    def hello_ack(self, *, nonce: bytes | None = None, host_nonce: bytes | None = None,
                  heartbeat_ms: int = 1000) -> dict[str, Any]:
        tlv = bytes((F.T_NONCE, 8)) + (self.nonce if nonce is None else nonce)
        tlv += bytes((F.T_MAX_PAYLOAD, 2)) + F.u16_bytes(4096)
        tlv += bytes((F.T_HEARTBEAT_MS, 2)) + F.u16_bytes(heartbeat_ms)
        tlv += bytes((F.T_VERSIONS, 2, 1, 1))
        if host_nonce:
            tlv += bytes((F.T_HOST_NONCE, 8)) + host_nonce
        return self.frame(F.HELLO_ACK, payload=tlv)

    def step(self, advance_ms: int = 0, host: list[dict[str, Any]] = (), *,  # type: ignore[assignment]
             header_only: tuple[int, ...] = (F.STATUS,), note: str = "") -> list[bytes]:
        """Run one step and record the board's answers; returns the answer bodies."""
        step: dict[str, Any] = {"advance_ms": advance_ms, "host_sends": list(host)}
        wrote, shown = linkboard.run_step(self.board, self.reader, step)
        bodies = linkboard.decode_frames(wrote)
        sends = []
        for body in bodies:
            assert len(body) >= 5, (self.name, body)
            want = linkboard.describe(body)
            want["wire"] = linkboard.encode_frame(body[1], body[2], body[3], body[4],
                                                  body[5:]).hex()
            if body[1] in header_only:
                want["compare"] = "header"
            sends.append(want)
        step["board_sends"] = sends
        step["board_shows"] = shown
        if note:
            step["note"] = note
        self.steps.append(step)
        return bodies

    def boot(self) -> bytes:
        """The first step: the board's first HELLO; remembers its session and nonce."""
        (hello,) = self.step(note="boot: the first HELLO")
        assert hello[1] == F.HELLO
        items = F.tlv_parse(hello[5:])
        self.session, self.nonce = hello[2], items[F.T_NONCE]
        return hello

    def up(self, **kw: Any) -> list[bytes]:
        self.boot()
        out = self.step(host=[self.hello_ack(**kw)], note="HELLO_ACK: the session is up")
        assert self.reader.link.state == 1, self.name
        return out

    def document(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "name": self.name, "description": self.description,
                "board": self.cfg, "steps": self.steps}


def types(bodies: list[bytes]) -> list[int]:
    return [b[1] for b in bodies]


CASES: list[tuple[str, str, Callable[[LinkCase], None], bytes | None, bool]] = []


def case(name: str, description: str, pair_key: bytes | None = None, repl: bool = False):
    def register(fn: Callable[[LinkCase], None]) -> Callable[[LinkCase], None]:
        CASES.append((name, description, fn, pair_key, repl))
        return fn

    return register


@case("hello-repeats", "A board without a session sends HELLO at once, then repeats the same "
      "HELLO (same nonce and session byte) every 100 ms + 2 x line time of 192 bytes + 150 ms: "
      "284 ms at 115 200 baud (protocol.md §5).")
def _(c: LinkCase) -> None:
    first = c.boot()
    assert c.step(283) == []
    assert c.step(1) == [first]
    assert c.step(284) == [first]


@case("session-up-status", "HELLO_ACK echoing the nonce starts the session; STATUS_REQUEST (seq "
      "0) is answered by STATUS (seq 0, ack 1; 19 u32 values, compared by shape: the values "
      "are the board's); the host's ACK settles it.")
def _(c: LinkCase) -> None:
    assert c.up() == []
    out = c.step(10, [c.frame(F.STATUS_REQUEST)])
    # The link acknowledges as soon as it has read the frame; the application answers after.
    assert types(out) == [F.ACK, F.STATUS] and out[1][3:5] == b"\x00\x01"
    assert len(out[1]) == 5 + 4 * 19
    assert c.step(10, [c.frame(F.ACK, ack=1)]) == []


@case("hello-ack-repeated", "A repeat of the HELLO_ACK the board already has changes nothing.")
def _(c: LinkCase) -> None:
    c.up()
    assert c.step(10, [c.hello_ack()]) == []
    assert types(c.step(10, [c.frame(F.STATUS_REQUEST)])) == [F.ACK, F.STATUS]


@case("hello-ack-wrong-nonce", "A HELLO_ACK whose NONCE is not the current attempt's is "
      "ignored (counted stale_session); the board goes on repeating the same HELLO; the right "
      "one starts the session.")
def _(c: LinkCase) -> None:
    first = c.boot()
    assert c.step(10, [c.hello_ack(nonce=bytes(8))]) == []
    assert c.step(274) == [first]
    assert c.step(10, [c.hello_ack()]) == []
    assert types(c.step(10, [c.frame(F.STATUS_REQUEST)])) == [F.ACK, F.STATUS]


@case("paired-board-proof", "A provisioned board (pairing key 00 01 .. 1f) answers a HELLO_ACK "
      "carrying HOST_NONCE with PAIR_PROOF as its first sequenced frame: HMAC-SHA256(key, "
      "'comptoir-pair-v1' | BOARD_ID | NONCE | HOST_NONCE | session)[:16] (protocol.md §10).",
      PAIR_KEY)
def _(c: LinkCase) -> None:
    (proof,) = c.up(host_nonce=HOST_NONCE)
    assert proof[1] == F.PAIR_PROOF and proof[3] == 0
    assert proof[5:] == pairing.proof(PAIR_KEY, BOARD_ID, c.nonce, HOST_NONCE, c.session)


@case("paired-board-without-host-nonce", "A provisioned board does not come up on a HELLO_ACK "
      "without HOST_NONCE: it is counted as malformed and the board starts a new attempt "
      "(new nonce and session byte) at its next HELLO.", PAIR_KEY)
def _(c: LinkCase) -> None:
    first = c.boot()
    assert c.step(10, [c.hello_ack()]) == []
    assert c.reader.link.state == 0
    (again,) = c.step(274)
    assert again[1] == F.HELLO and again != first and again[2] != first[2]


@case("hello-reject-waits", "After HELLO_REJECT the board sends nothing for 5 s, then a new "
      "attempt (new nonce and session byte).")
def _(c: LinkCase) -> None:
    first = c.boot()
    reject = bytes((F.REJECT_UNKNOWN_BOARD, 1, 1)) + b"board not paired"
    assert c.step(10, [c.frame(F.HELLO_REJECT, payload=reject)]) == []
    assert c.step(4999) == []  # 5 s after the HELLO_REJECT arrived
    (again,) = c.step(1)
    assert again[1] == F.HELLO and again[2] != first[2]


@case("repl-board-receive-limit", "A board whose host link is the REPL's UART (\"repl\": "
      "true) announces MAX_PAYLOAD 96 in HELLO while it sends up to its own 1024: a 96-byte "
      "frame is received (LOG to a board: ERROR 3), a 97-byte one is counted oversized and "
      "answered NAK (protocol.md §3).", repl=True)
def _(c: LinkCase) -> None:
    c.up()
    hello = bytes.fromhex(c.steps[0]["board_sends"][0]["payload"])
    assert F.tlv_parse(hello)[F.T_MAX_PAYLOAD] == F.u16_bytes(96)
    out = c.step(10, [c.frame(F.LOG, seq=0, payload=bytes([20]) + b"x" * 95)])
    assert types(out) == [F.ERROR] and out[0][4] == 1, out  # ERROR 3, acknowledging seq 0
    out = c.step(10, [c.frame(F.LOG, seq=1, ack=1, payload=bytes([20]) + b"y" * 96)])
    assert types(out) == [F.NAK] and out[0][4] == 1, out
    assert c.reader.link.counter("oversized_frames") == 1


def _error3(bodies: list[bytes], seq: int, ack: int) -> None:
    assert types(bodies) == [F.ERROR], bodies
    assert bodies[0][3] == seq and bodies[0][4] == ack and bodies[0][5:7] == b"\x03\x00"


@case("log-to-board", "LOG is a board -> host frame: one sent to the board is acknowledged and "
      "answered by ERROR 3 (a request it cannot act on).")
def _(c: LinkCase) -> None:
    c.up()
    _error3(c.step(10, [c.frame(F.LOG, payload=b"\x14hello")]), 0, 1)


@case("unknown-sequenced-type", "A sequenced frame of a type the board does not know (0x30) is "
      "acknowledged and answered by ERROR 3.")
def _(c: LinkCase) -> None:
    c.up()
    _error3(c.step(10, [c.frame(0x30, payload=b"?")]), 0, 1)


@case("verdict-for-an-object-never-sent", "A VERDICT for an object id the board never sent is "
      "not shown: ERROR 3 (protocol.md §9).")
def _(c: LinkCase) -> None:
    c.up()
    verdict = F.u16_bytes(1) + bytes((F.V_ACCEPTED,)) + F.u16_bytes(0) + b"ACCEPTE"
    out = c.step(10, [c.frame(F.VERDICT, payload=verdict)])
    _error3(out, 0, 1)
    assert c.steps[-1]["board_shows"] == []
    cam = F.u16_bytes(0x8001) + bytes((F.V_ACCEPTED,)) + F.u16_bytes(0) + b"ACCEPTE"
    _error3(c.step(10, [c.frame(F.VERDICT, seq=1, ack=1, payload=cam)]), 1, 2)


@case("duplicate-frame", "A sequenced frame received again (its ACK was lost) is not delivered "
      "twice: the board acknowledges it again (ACK), no second STATUS.")
def _(c: LinkCase) -> None:
    c.up()
    req = c.frame(F.STATUS_REQUEST)
    assert types(c.step(10, [req])) == [F.ACK, F.STATUS]
    out = c.step(10, [req])
    assert types(out) == [F.ACK] and out[0][4] == 1


@case("out-of-order", "A sequenced frame ahead of the expected one (seq 1 when 0 is due) is "
      "dropped and NAKed; seq 0 then 1 are delivered.")
def _(c: LinkCase) -> None:
    c.up()
    out = c.step(10, [c.frame(F.STATUS_REQUEST, seq=1)])
    assert types(out) == [F.NAK] and out[0][4] == 0
    assert types(c.step(10, [c.frame(F.STATUS_REQUEST, seq=0)])) == [F.ACK, F.STATUS]


@case("damaged-frame", "A frame with a wrong CRC is counted and NAKed; a 5-byte body (under the "
      "9-byte minimum) too, at most once per full-frame line time.")
def _(c: LinkCase) -> None:
    c.up()
    bad = c.frame(F.STATUS_REQUEST, note="CRC damaged")
    raw = bytearray(bytes.fromhex(bad["wire"]))
    raw[-3] ^= 0x01
    bad["wire"] = bytes(raw).hex()
    assert types(c.step(10, [bad])) == [F.NAK]
    assert types(c.step(200, [c.frame(F.STATUS_REQUEST)])) == [F.ACK, F.STATUS]


@case("heartbeat", "With nothing to send for HEARTBEAT_MS (1000, from the HELLO_ACK) the board "
      "sends HEARTBEAT, carrying its ack.")
def _(c: LinkCase) -> None:
    c.up()
    assert c.step(999) == []
    out = c.step(1)
    assert types(out) == [F.HEARTBEAT] and out[0][3] == 0


@case("retransmission", "A frame not acknowledged is sent again when the retransmission timer "
      "expires: rto = 100 ms + 2 x the line time of a full frame (1024-byte payloads at 115 200 "
      "baud: 100 + 2 x 91 = 282 ms), counted from when the frame has left the UART (here 10 ms "
      "after the step: the ACK's and the STATUS frame's own line time), so 292 ms.")
def _(c: LinkCase) -> None:
    c.up()
    _ack, status = c.step(10, [c.frame(F.STATUS_REQUEST)])
    link = c.reader.link
    assert link.rto_ms == 100 + 2 * 91
    assert link._rtx_deadline - c.board.t == 292
    assert c.step(291) == []
    assert c.step(1) == [status]


@case("reset-from-host", "RESET in the board's session ends it: the board starts a new attempt "
      "(new nonce and session byte) at once.")
def _(c: LinkCase) -> None:
    c.up()
    (hello,) = c.step(10, [c.frame(F.RESET)])
    assert hello[1] == F.HELLO and hello[2] != c.session


@case("stale-session", "A frame of another session byte is counted (stale_session) and "
      "dropped; a frame of another protocol version too (bad_version).")
def _(c: LinkCase) -> None:
    c.up()
    assert c.step(10, [c.frame(F.STATUS_REQUEST, session=(c.session % 255) + 1)]) == []
    assert c.step(10, [c.frame(F.STATUS_REQUEST, version=2)]) == []
    assert types(c.step(10, [c.frame(F.STATUS_REQUEST)])) == [F.ACK, F.STATUS]


@case("link-lost", "Nothing received for max(4 x heartbeat, 2 s) + 2 x full-frame time + 100 ms "
      "(4000 + 182 + 100 = 4282 ms; the board's own heartbeats do not count): the board drops "
      "the session and says HELLO with a new attempt.")
def _(c: LinkCase) -> None:
    c.up()
    assert c.reader.link.link_timeout_ms == 4282
    for _ in range(4):
        assert types(c.step(1000)) == [F.HEARTBEAT]  # ours: they keep nothing alive
    assert c.step(282) == []
    assert c.step(1) == []  # 4283 ms: the session is dropped; the new HELLO goes at the next poll
    assert c.reader.link.state == 0
    (hello,) = c.step(1)
    assert hello[1] == F.HELLO and hello[2] != c.session


@case("bench", "BENCH_REQUEST count 3, size 16: BENCH_DATA frames (index u16 LE, then byte i "
      "of the payload = (7 i + 1) mod 256 for 2 <= i < 16), two at a time (window 2), then "
      "BENCH_DONE (count 3).")
def _(c: LinkCase) -> None:
    c.up()
    out = c.step(10, [c.frame(F.BENCH_REQUEST, payload=F.u16_bytes(3) + F.u16_bytes(16))])
    assert types(out) == [F.ACK, F.BENCH_DATA, F.BENCH_DATA]
    filler = bytes((7 * i + 1) & 0xFF for i in range(2, 16))
    assert out[1][5:] == b"\x00\x00" + filler and out[2][5:] == b"\x01\x00" + filler
    out = c.step(10, [c.frame(F.ACK, ack=2)])
    assert types(out) == [F.BENCH_DATA, F.BENCH_DONE] and out[1][5:] == F.u16_bytes(3)


def link_vectors() -> dict[str, dict[str, Any]]:
    out = {}
    for name, description, build, key, repl in CASES:
        c = LinkCase(name, description, pair_key=key, repl=repl)
        build(c)
        out[name] = c.document()
    return out


def run_link_vector(doc: dict[str, Any]) -> list[str]:
    return linkboard.run_vector(doc)
