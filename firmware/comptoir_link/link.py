# The reliable serial link between a reader board and the host, written once for
# MicroPython and CPython. It owns no I/O: the caller feeds it received bytes,
# calls poll() for its timers, and gives it a write() for the line. That keeps it
# testable with a fake clock and lets each side drive it its own way (the
# firmware's main loop, a host thread per board).
#
# Reliability: go-back-N with a small window, cumulative acknowledgements
# piggybacked on every frame, NAK for fast recovery, a retransmission timer that
# knows how long the line takes to carry a frame, duplicate suppression by
# sequence number, a session byte against stale frames, heartbeats, and link-loss
# detection. docs/protocol.md describes every byte.
from struct import pack_into

from comptoir_link import frames as F
from comptoir_link.cobs import Decoder, encode_into, max_encoded_len
from comptoir_link.compat import const, crc32, ticks_add, ticks_diff, ticks_ms

DOWN = const(0)  # no session (a board sends HELLO until one is accepted)
UP = const(1)
REFUSED = const(2)  # the host refused this board's HELLO (it retries slowly)

STATE_NAMES = ("down", "up", "refused")

# Counters, by index into Link.counters (names in COUNTER_NAMES).
C_RX_FRAMES = const(0)
C_TX_FRAMES = const(1)
C_CRC = const(2)
C_MALFORMED = const(3)
C_OVERSIZE = const(4)
C_BAD_VERSION = const(5)
C_SHORT = const(6)
C_STALE_SESSION = const(7)
C_DUPLICATE = const(8)
C_OUT_OF_ORDER = const(9)
C_RETRANSMIT = const(10)
C_UNKNOWN_TYPE = const(11)
C_LINK_LOST = const(12)
C_NO_SESSION = const(13)
C_BAD_ACK = const(14)
C_SESSIONS = const(15)

COUNTER_NAMES = (
    "rx_frames",
    "tx_frames",
    "crc_errors",
    "malformed_frames",
    "oversized_frames",
    "bad_version",
    "short_frames",
    "stale_session",
    "duplicates",
    "out_of_order",
    "retransmits",
    "unknown_type",
    "link_lost",
    "no_session",
    "bad_ack",
    "sessions",
)
# Counters that mean something arrived damaged or unwanted (reported through on_error).
_ERROR_COUNTERS = (C_CRC, C_MALFORMED, C_OVERSIZE, C_BAD_VERSION, C_SHORT, C_STALE_SESSION,
                   C_UNKNOWN_TYPE, C_BAD_ACK)

_CTRL_BODY = const(192)  # control frames (HELLO carries about 100 bytes of TLV)
# CRC-32 of a body followed by its own CRC-32 (little-endian): the same for every
# good frame, and a small int on a 32-bit port, where most CRC values are heap long
# ints (review finding 13: the receive path checks a frame without building one).
_CRC_RESIDUE = const(0x2144DF1C)


def frame_time_ms(nbytes, baud):
    """Line time of nbytes at baud, 8N1 (10 bits a byte), rounded up."""
    return (nbytes * 10000 + baud - 1) // baud


def _nop(*args):
    pass


class Link:
    """What both ends of the link share. A board uses BoardLink (board_side.py),
    the host HostLink (host_side.py): each side's session handling lives in its
    own module, so a board never loads the host's half. Set the on_* callbacks
    before feeding it.

    on_message(ftype, payload)  a sequenced frame, in order, exactly once. payload
                                is a memoryview valid only during the call.
    on_up(info)                 a session started; info is the peer's HELLO /
                                HELLO_ACK TLV dict (tag -> bytes)
    on_down(reason)             the session ended (loss, peer restart, refusal)
    on_error(counter, detail)   a damaged or unwanted frame was counted
    """

    is_board = False

    def __init__(self, write, baud=115200, max_payload=F.DEFAULT_MAX_PAYLOAD,
                 window=2, heartbeat_ms=1000, rto_base_ms=100, max_retries=8,
                 random_bytes=None, clock=None, rx_payload=0):
        # max_payload: the largest payload this side sends (its retransmission
        # slots); rx_payload: the largest it receives, announced to the peer in
        # HELLO / HELLO_ACK (0: max_payload). Each side sends at most what the
        # other announced (docs/protocol.md §3): a board whose receive buffer is
        # small (the ESP32's 260-byte REPL ring) still sends 4 kB frames.
        if not rx_payload:
            rx_payload = max_payload
        if window not in (1, 2, 4, 8):
            raise ValueError("window must be 1, 2, 4 or 8")
        if not (16 <= max_payload <= F.MAX_PAYLOAD_LIMIT
                and 16 <= rx_payload <= F.MAX_PAYLOAD_LIMIT):
            raise ValueError("max_payload out of range")
        self._write = write
        self.baud = baud
        self.max_payload = max_payload
        self.rx_payload = rx_payload
        self.window = window
        self.heartbeat_ms = heartbeat_ms
        self.rto_base_ms = rto_base_ms
        self.max_retries = max_retries
        self._random = random_bytes
        self.host_nonce = b""
        self._clock = clock or ticks_ms

        self.on_message = _nop
        self.on_up = _nop
        self.on_down = _nop
        self.on_error = _nop

        self.counters = [0] * len(COUNTER_NAMES)
        self.peer = {}

        body = F.HEADER_LEN + max_payload + F.CRC_LEN
        self._wire_max = max_encoded_len(body) + 2  # leading and trailing 0x00
        # A data frame's body is built at this offset inside its own slot and
        # COBS-encoded in place towards the slot's start: the encoder's output
        # never overtakes its input, so no separate body buffer is needed.
        self._body_at = self._wire_max - body
        # The receive buffer takes the largest sequenced frame announced and any
        # control frame (a HELLO_REJECT's text, a HELLO's TLV).
        rx_body = F.OVERHEAD + rx_payload
        self._dec = Decoder(rx_body if rx_body > _CTRL_BODY else _CTRL_BODY)
        # The full frame either way, for the timers (the peer may be sending one).
        self._full_wire = max_encoded_len(rx_body if rx_body > body else body) + 2
        self._rx_mv = memoryview(self._dec.buf)
        self._slots = [bytearray(self._wire_max) for _ in range(window)]
        self._slot_len = [0] * window
        self._cbody = bytearray(_CTRL_BODY)
        self._cbody_mv = memoryview(self._cbody)
        self._cwire = bytearray(max_encoded_len(_CTRL_BODY) + 2)
        self._cwire_mv = memoryview(self._cwire)
        self._tlv = bytearray(_CTRL_BODY - F.OVERHEAD)

        self.state = DOWN
        self.session = 0
        self.nonce = b""
        self.tx_limit = max_payload
        now = self._clock()
        self._tx_free_at = now
        self._last_tx = now
        self._last_rx = now
        self._next_hello = now
        self._reset_seq()
        self._set_timing()

    # ----------------------------------------------------------------- timing
    def _set_timing(self):
        # The peer may be sending a full frame before it can acknowledge ours,
        # so the timer allows two frame times on top of the fixed base.
        full = frame_time_ms(self._full_wire, self.baud)
        self.rto_ms = self.rto_base_ms + 2 * full
        # At least 2 s: a short heartbeat must not turn a burst of line noise
        # (which delays every frame behind it) into a lost link.
        self.link_timeout_ms = max(4 * self.heartbeat_ms, 2000) + 2 * full + self.rto_base_ms
        self.hello_interval_ms = self.rto_base_ms + 2 * frame_time_ms(_CTRL_BODY, self.baud) + 150

    def _reset_seq(self):
        self.tx_seq = 0  # next sequence number to assign
        self.base = 0  # oldest unacknowledged
        self.n_out = 0
        self.retries = 0
        self.rx_expected = 0
        self._ack_owed = False
        self._nak_owed = False
        self._rtx_deadline = self._clock()
        self._fast_rtx_after = self._clock()
        self._nak_after = self._clock()

    # ------------------------------------------------------------ public API
    def can_send(self):
        return self.state == UP and self.n_out < self.window

    def idle(self):
        """Nothing waiting for an acknowledgement."""
        return self.n_out == 0

    def send(self, ftype, payload=b"", n=-1):
        """Queue a sequenced frame; False if the window is full or no session.

        The frame is copied: the caller may reuse payload at once.
        """
        if ftype < F.FIRST_SEQUENCED:
            raise ValueError("control frames are sent by the link itself")
        if n < 0:
            n = len(payload)
        if n > self.tx_limit:
            raise ValueError("payload %d > link limit %d" % (n, self.tx_limit))
        if not self.can_send():
            return False
        seq = self.tx_seq
        i = seq % self.window
        slot = memoryview(self._slots[i])
        body = slot[self._body_at :]
        blen = self._build(body, ftype, seq, payload, n)
        self._slot_len[i] = self._encode(body, blen, slot)
        self.tx_seq = (seq + 1) & 0xFF
        self.n_out += 1
        self._transmit(memoryview(self._slots[i])[: self._slot_len[i]])
        if self.n_out == 1:
            self._arm_rtx()
        return True

    def feed(self, data, n=-1):
        """Bytes received from the line."""
        if n < 0:
            n = len(data)
        dec = self._dec
        for i in range(n):
            r = dec.feed_byte(data[i])
            if r == -1:
                continue
            if r >= 0:
                self._on_body(r)
            elif r == -2:
                self._count(C_OVERSIZE, "frame longer than %d bytes" % self._dec._size)
                self._nak_owed = True
            else:
                self._count(C_MALFORMED, "bad COBS block")
                self._nak_owed = True
        self._flush_owed()

    def poll(self):
        """Run the timers: hello, retransmission, heartbeat, link loss."""
        now = self._clock()
        if self.state == UP:
            if self.n_out and ticks_diff(now, self._rtx_deadline) >= 0:
                self.retries += 1
                if self.retries > self.max_retries:
                    self._lose("no acknowledgement after %d retransmissions" % self.max_retries)
                    return
                self._retransmit()
            if ticks_diff(now, self._last_rx) > self.link_timeout_ms:
                self._lose("nothing received for %d ms" % ticks_diff(now, self._last_rx))
                return
            if ticks_diff(now, self._last_tx) >= self.heartbeat_ms:
                self._control(F.HEARTBEAT, b"")
        else:
            self._poll_down(now)

    def reset(self, reason="reset by application"):
        """Forget the session (the board will HELLO again)."""
        if self.state == UP:
            self._lose(reason)
        else:
            self.state = DOWN
            self._next_hello = self._clock()

    def counter(self, name):
        return self.counters[COUNTER_NAMES.index(name)]

    # ------------------------------------------------------------ framing out
    def _build(self, body, ftype, seq, payload, n):
        body[0] = F.PROTOCOL_VERSION
        body[1] = ftype
        body[2] = self.session
        body[3] = seq
        body[4] = self.rx_expected
        if n:
            body[5 : 5 + n] = payload[:n] if len(payload) != n else payload
        end = 5 + n
        # Written by struct, not by shifts: on a 32-bit port 3/4 of CRC values are
        # long ints and every operation on one allocates (finding 13).
        pack_into("<I", body, end, crc32(body[:end]))
        return end + 4

    def _encode(self, body_mv, blen, out):
        out[0] = 0  # a leading delimiter flushes line noise out of the receiver
        k = encode_into(body_mv, blen, out[1:])
        out[k + 1] = 0
        return k + 2

    def _transmit(self, mv):
        now = self._clock()
        if ticks_diff(self._tx_free_at, now) < 0:
            self._tx_free_at = now
        self._tx_free_at = ticks_add(self._tx_free_at, frame_time_ms(len(mv), self.baud))
        self._write(mv)
        # A write that returned later than the line time says (the ESP32's REPL
        # UART paces stdout by the FreeRTOS tick, ~12.8 kB/s at any rate: review
        # finding 5) puts the frame on its way only now: timers start from here.
        done = self._clock()
        if ticks_diff(done, self._tx_free_at) > 0:
            self._tx_free_at = done
        self._last_tx = now
        self._ack_owed = False
        self.counters[C_TX_FRAMES] += 1

    def _control(self, ftype, payload, session=-1):
        if session >= 0:
            saved, self.session = self.session, session
        blen = self._build(self._cbody_mv, ftype, 0, payload, len(payload))
        if session >= 0:
            self.session = saved
        k = self._encode(self._cbody_mv, blen, self._cwire_mv)
        self._transmit(self._cwire_mv[:k])

    def _arm_rtx(self):
        self._rtx_deadline = ticks_add(self._tx_free_at, self.rto_ms)

    def _retransmit(self):
        # Go-back-N: resend every unacknowledged frame, oldest first.
        for k in range(self.n_out):
            i = ((self.base + k) & 0xFF) % self.window
            self._transmit(memoryview(self._slots[i])[: self._slot_len[i]])
            self.counters[C_RETRANSMIT] += 1
        self._arm_rtx()
        self._fast_rtx_after = ticks_add(self._tx_free_at, 20)

    def _flush_owed(self):
        if self.state != UP:
            self._nak_owed = False
            return
        now = self._clock()
        if self._nak_owed:
            self._nak_owed = False
            if ticks_diff(now, self._nak_after) >= 0:
                self._control(F.NAK, b"")
                # One NAK per window's worth of line time is enough.
                self._nak_after = ticks_add(self._tx_free_at,
                                            frame_time_ms(self._wire_max, self.baud))
                return
        if self._ack_owed:
            self._control(F.ACK, b"")

    # ------------------------------------------------------------- framing in
    def _count(self, c, detail):
        self.counters[c] += 1
        if c in _ERROR_COUNTERS:
            self.on_error(COUNTER_NAMES[c], detail)

    def _on_body(self, n):
        buf = self._dec.buf
        if n < F.OVERHEAD:
            self._count(C_SHORT, "%d-byte frame" % n)
            self._nak_owed = True
            return
        if crc32(self._rx_mv[:n]) != _CRC_RESIDUE:
            self._count(C_CRC, "CRC mismatch on a %d-byte frame" % n)
            self._nak_owed = True
            return
        self.counters[C_RX_FRAMES] += 1
        ver = buf[0]
        ftype = buf[1]
        sess = buf[2]
        seq = buf[3]
        ack = buf[4]
        payload = self._rx_mv[5 : n - 4]
        if ver != F.PROTOCOL_VERSION:
            self._count(C_BAD_VERSION,
                        "protocol version %d, we speak %d" % (ver, F.PROTOCOL_VERSION))
            self._bad_version(ftype, sess, ver)
            return
        if ftype >= F.FIRST_SEQUENCED and n - F.OVERHEAD > self.rx_payload:
            # Within the receive buffer (which also takes control frames) but over
            # the limit this side announced: the peer broke the rule.
            self._count(C_OVERSIZE, "%d-byte payload, limit %d"
                        % (n - F.OVERHEAD, self.rx_payload))
            self._nak_owed = True
            return
        if ftype < F.ACK or ftype == F.RESET:  # HELLO, HELLO_ACK, HELLO_REJECT, RESET
            self._on_session_control(ftype, sess, payload)
            return
        if ftype < F.FIRST_SEQUENCED and ftype not in (F.ACK, F.NAK, F.HEARTBEAT):
            self._count(C_UNKNOWN_TYPE, "frame type 0x%02x" % ftype)
            return
        if self.state != UP or sess != self.session:
            if self.state == UP:
                self._count(C_STALE_SESSION, "session %d, current %d" % (sess, self.session))
            else:
                self.counters[C_NO_SESSION] += 1
            self._no_session(sess)
            return
        self._last_rx = self._clock()
        self._on_ack(ack)
        if ftype == F.NAK:
            self._on_nak()
            return
        if ftype < F.FIRST_SEQUENCED:
            return
        if seq == self.rx_expected:
            self.rx_expected = (seq + 1) & 0xFF
            self._ack_owed = True
            self.on_message(ftype, payload)
        elif ((self.rx_expected - seq) & 0xFF) <= 128:
            self._count(C_DUPLICATE, "seq %d again" % seq)
            self._ack_owed = True  # our ACK was lost: say it again
        else:
            self._count(C_OUT_OF_ORDER, "seq %d, expected %d" % (seq, self.rx_expected))
            self._nak_owed = True

    def _on_ack(self, ack):
        d = (ack - self.base) & 0xFF
        if d == 0:
            return
        if d > self.n_out:
            if ((self.base - ack) & 0xFF) < 128:
                # Behind what we know: a frame the peer retransmitted carries the
                # ack of when it was first built (go-back-N resends it as is).
                return
            self._count(C_BAD_ACK, "ack %d outside the window" % ack)
            return
        self.base = ack
        self.n_out -= d
        self.retries = 0
        if self.n_out:
            self._arm_rtx()

    def _on_nak(self):
        now = self._clock()
        if self.n_out and ticks_diff(now, self._fast_rtx_after) >= 0:
            # A NAK-driven resend is an attempt like a timed one: counting it
            # stops a line that always mangles the same frame from looping forever.
            self.retries += 1
            if self.retries > self.max_retries:
                self._lose("no acknowledgement after %d retransmissions" % self.max_retries)
                return
            self._retransmit()

    def _lose(self, reason):
        lost = self.n_out
        self.state = DOWN
        self.counters[C_LINK_LOST] += 1
        self._reset_seq()
        self._next_hello = self._clock()
        if self.is_board:
            self.nonce = b""  # the next HELLO starts a new session
        if lost:
            reason = "%s (%d frame(s) unacknowledged)" % (reason, lost)
        self.on_down(reason)

    # ------------------------------------------------------------ sessions
    # Hooks the two sides fill in (board_side.py, host_side.py).
    def _on_session_control(self, ftype, sess, payload):
        self._count(C_UNKNOWN_TYPE, "type 0x%02x" % ftype)

    def _bad_version(self, ftype, sess, ver):
        pass

    def _no_session(self, sess):
        pass

    def _poll_down(self, now):
        pass

    def _start_session(self, info):
        self.peer = info
        peer_max = F.u16(info[F.T_MAX_PAYLOAD]) if F.T_MAX_PAYLOAD in info else 256
        self.tx_limit = min(self.max_payload, peer_max)
        hb = info.get(F.T_HEARTBEAT_MS)
        if hb and len(hb) == 2:
            self.heartbeat_ms = max(20, F.u16(hb))
        self._set_timing()
        self._reset_seq()
        self.state = UP
        self.counters[C_SESSIONS] += 1
        self._last_rx = self._clock()
