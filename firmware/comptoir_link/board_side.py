# The board's half of the link's session handling: HELLO until the host accepts
# us, HELLO_ACK / HELLO_REJECT / RESET, and the pairing proof as the first frame.
from comptoir_link import frames as F
from comptoir_link import pairing
from comptoir_link.compat import ticks_add, ticks_diff
from comptoir_link.link import (
    C_MALFORMED,
    C_STALE_SESSION,
    C_UNKNOWN_TYPE,
    DOWN,
    REFUSED,
    UP,
    Link,
)

_REFUSED_RETRY_MS = 5000  # a refused board asks again, so a host upgrade is picked up


class BoardLink(Link):
    is_board = True

    def __init__(self, write, hello_items=None, pair_key=None, **kw):
        Link.__init__(self, write, **kw)
        self._hello_items = hello_items or {}
        self._pair_key = pair_key

    def _poll_down(self, now):
        if ticks_diff(now, self._next_hello) >= 0:
            self._send_hello(now)

    def _send_hello(self, now):
        if not self.nonce:
            # A fresh attempt: new nonce and session byte. Repeats reuse them, so
            # the host can tell a repeat (its HELLO_ACK was lost) from a restart.
            rnd = self._random(9)
            self.nonce = bytes(rnd[:8])
            self.session = (rnd[8] % 255) + 1
        tlv = self._tlv
        o = 0
        for tag in sorted(self._hello_items):
            o = F.tlv_put(tlv, o, tag, self._hello_items[tag])
        o = F.tlv_put(tlv, o, F.T_MAX_PAYLOAD, F.u16_bytes(self.rx_payload))
        o = F.tlv_put(tlv, o, F.T_VERSIONS, bytes((F.PROTOCOL_MIN, F.PROTOCOL_MAX)))
        o = F.tlv_put(tlv, o, F.T_NONCE, self.nonce)
        self._control(F.HELLO, memoryview(tlv)[:o])
        interval = self.hello_interval_ms if self.state == DOWN else _REFUSED_RETRY_MS
        self._next_hello = ticks_add(now, interval)

    def _on_session_control(self, ftype, sess, payload):
        if ftype == F.HELLO:
            self._count(C_UNKNOWN_TYPE, "HELLO received by a board")
            return
        if ftype == F.RESET:
            if sess == self.session and self.state == UP:
                self._lose("host has no session with us")
            return
        if sess != self.session:
            self._count(C_STALE_SESSION, "type 0x%02x for session %d" % (ftype, sess))
            return
        if ftype == F.HELLO_REJECT:
            reason = payload[0] if len(payload) else 0
            text = bytes(payload[3:]).decode() if len(payload) > 3 else ""
            was_up = self.state == UP
            self.state = REFUSED
            self.nonce = b""
            # The next attempt (a new nonce) only after the refused board's pause, not at
            # the HELLO repeat already scheduled.
            self._next_hello = ticks_add(self._clock(), _REFUSED_RETRY_MS)
            self.on_down("refused by host (reason %d): %s" % (reason, text))
            if was_up:
                self._reset_seq()
            return
        # HELLO_ACK
        try:
            info = F.tlv_parse(payload)
        except ValueError as e:
            self._count(C_MALFORMED, "HELLO_ACK: %s" % e)
            return
        if info.get(F.T_NONCE) != self.nonce:
            self._count(C_STALE_SESSION, "HELLO_ACK for another attempt")
            return
        if self.state == UP:
            return  # a repeat of the HELLO_ACK we already have
        host_nonce = info.get(F.T_HOST_NONCE, b"")
        if self._pair_key and len(host_nonce) != 8:
            # A provisioned board only works for a host that asks for its pairing proof: a
            # HELLO_ACK without HOST_NONCE (a host that does not know this board, or one
            # stripped on the way) does not start a session. The board keeps saying HELLO.
            self._count(C_MALFORMED, "HELLO_ACK without HOST_NONCE to a paired board")
            self.nonce = b""  # the next HELLO is a new attempt: the host starts afresh
            return
        self._start_session(info)
        self.host_nonce = host_nonce
        if self._pair_key and self.host_nonce:
            # The first sequenced frame of the session: the window is empty.
            self.send(F.PAIR_PROOF, pairing.proof(
                self._pair_key, self._hello_items.get(F.T_BOARD_ID, b""),
                self.nonce, self.host_nonce, self.session))
        self.on_up(info)
