# The host's half of the link's session handling: accept or refuse a board's
# HELLO, answer HELLO_ACK with the link settings and a fresh host nonce, tell a
# board we have no session with to start over, and refuse a session (pairing).
# The board never loads this module.
from comptoir_link import frames as F
from comptoir_link.compat import ticks_add, ticks_diff
from comptoir_link.link import C_BAD_VERSION, C_MALFORMED, C_UNKNOWN_TYPE, UP, Link


class HostLink(Link):
    """accept_hello(info): None to accept the board, or (reason, text) to refuse it."""

    def __init__(self, write, **kw):
        Link.__init__(self, write, **kw)
        self.accept_hello = None
        self._reset_after = self._clock()

    def refuse(self, reason, text):
        """End this session with a HELLO_REJECT the board shows (pairing)."""
        if self.state != UP:
            return
        self._reject(self.session, reason, text)
        self._lose("refused: " + text)

    def _bad_version(self, ftype, sess, ver):
        if ftype == F.HELLO:
            self._reject(sess, F.REJECT_VERSION, "protocol version %d not supported" % ver)

    def _no_session(self, sess):
        # Tell the board to start over, at most once per hello interval.
        now = self._clock()
        if ticks_diff(now, self._reset_after) >= 0:
            self._control(F.RESET, b"", session=sess)
            self._reset_after = ticks_add(now, self.hello_interval_ms)

    def _on_session_control(self, ftype, sess, payload):
        if ftype != F.HELLO:
            self._count(C_UNKNOWN_TYPE, "type 0x%02x received by the host" % ftype)
            return
        try:
            info = F.tlv_parse(payload)
            nonce = info[F.T_NONCE]
            versions = info[F.T_VERSIONS]
            if len(nonce) != 8 or len(versions) != 2:
                raise ValueError("bad nonce or versions item")
            if sess == 0:
                raise ValueError("session 0 is reserved")
        except (ValueError, KeyError) as e:
            self._count(C_MALFORMED, "HELLO: %s" % e)
            self._reject(sess, F.REJECT_MALFORMED, "malformed HELLO: %s" % e)
            return
        if self.state == UP and nonce == self.nonce and sess == self.session:
            self._send_hello_ack()  # the board did not get our HELLO_ACK
            return
        if not versions[0] <= F.PROTOCOL_VERSION <= versions[1]:
            self._count(C_BAD_VERSION, "board speaks %d..%d" % (versions[0], versions[1]))
            self._reject(sess, F.REJECT_VERSION, "host speaks protocol %d..%d, board %d..%d"
                         % (F.PROTOCOL_MIN, F.PROTOCOL_MAX, versions[0], versions[1]))
            return
        if self.accept_hello is not None:
            refusal = self.accept_hello(info)
            if refusal is not None:
                self._reject(sess, refusal[0], refusal[1])
                return
        if self.state == UP:
            self._lose("board started a new session")
        self.nonce = nonce
        self.session = sess
        self.host_nonce = bytes(self._random(8)) if self._random else b""
        self._start_session(info)
        self._send_hello_ack()
        self.on_up(info)

    def _reject(self, sess, reason, text):
        t = text.encode()[:100]
        self._control(F.HELLO_REJECT, bytes((reason, F.PROTOCOL_MIN, F.PROTOCOL_MAX)) + t,
                      session=sess)

    def _send_hello_ack(self):
        tlv = self._tlv
        o = F.tlv_put(tlv, 0, F.T_NONCE, self.nonce)
        o = F.tlv_put(tlv, o, F.T_MAX_PAYLOAD, F.u16_bytes(self.rx_payload))
        o = F.tlv_put(tlv, o, F.T_HEARTBEAT_MS, F.u16_bytes(self.heartbeat_ms))
        o = F.tlv_put(tlv, o, F.T_VERSIONS, bytes((F.PROTOCOL_MIN, F.PROTOCOL_MAX)))
        if self.host_nonce:
            o = F.tlv_put(tlv, o, F.T_HOST_NONCE, self.host_nonce)
        self._control(F.HELLO_ACK, memoryview(tlv)[:o])
