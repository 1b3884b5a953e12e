# Frame types and constants of the Comptoir serial link, shared by the firmware
# and the host (the host imports this very file). docs/protocol.md describes
# every byte; keep the two in step. Names for humans (logs, the twin's screen)
# are in names.py, which the board never loads: every global here costs heap.
from comptoir_link.compat import const

PROTOCOL_VERSION = const(1)
# Versions this build can speak; a HELLO outside them is refused by name.
PROTOCOL_MIN = const(1)
PROTOCOL_MAX = const(1)

# Frame body: version, type, session, seq, ack, payload..., CRC-32 (LE) of all before it.
HEADER_LEN = const(5)
CRC_LEN = const(4)
OVERHEAD = const(9)

# The largest payload any build accepts; each side announces the largest it
# receives in HELLO / HELLO_ACK and the other side sends no more (per direction).
MAX_PAYLOAD_LIMIT = const(8192)
DEFAULT_MAX_PAYLOAD = const(4096)

# --- Control frames: unsequenced, never acknowledged, never retransmitted as such.
HELLO = const(0x01)  # board -> host: who I am; starts a session
HELLO_ACK = const(0x02)  # host -> board: session accepted, with the link settings
HELLO_REJECT = const(0x03)  # host -> board: refused (version, unknown board, ...)
ACK = const(0x04)  # cumulative acknowledgement only
NAK = const(0x05)  # "I lost something after `ack`": resend from there now
HEARTBEAT = const(0x06)  # keep-alive when idle (carries an ack too)
RESET = const(0x07)  # "I have no session with you": the board must HELLO again

# --- Sequenced frames (type >= 0x10): delivered exactly once, in order.
LOG = const(0x10)  # level (1 byte) + UTF-8 text
ERROR = const(0x11)  # code (2 bytes LE) + UTF-8 text
BENCH_REQUEST = const(0x12)  # host -> board: count (u16 LE), size (u16 LE)
BENCH_DATA = const(0x13)  # board -> host: index (u16 LE) + filler
BENCH_DONE = const(0x14)  # board -> host: count (u16 LE)
STATUS = const(0x15)  # board -> host: u32 LE values, see docs/protocol.md
STATUS_REQUEST = const(0x16)  # host -> board: empty
PAIR_PROOF = const(0x17)  # board -> host: 16-byte proof of the pairing key (pairing.py)

FIRST_SEQUENCED = const(0x10)

# --- Application frames (sequenced). Large objects travel as OBJECT_CHUNKs.
CHALLENGE = const(0x20)  # host -> board: challenge id u16 LE, 16-byte NFC challenge
OBJECT_CHUNK = const(0x21)  # board -> host: kind u8, object id u16, total u32, offset u32, data
TAP_ERROR = const(0x22)  # board -> host: object id u16, error code u16, UTF-8 text
VERDICT = const(0x23)  # host -> board: object id u16, verdict u8, reason u16, UTF-8 display text
QR_TEXT = const(0x24)  # board -> host: object id u16, the QR text decoded on the board
CHALLENGE_NEEDED = const(0x25)  # board -> host: how many fresh challenges the board wants (u8)

# OBJECT_CHUNK kinds
OBJ_NFC_PRESENTATION = const(1)  # bytes read from the phone, with the challenge id first (u16)
OBJ_FRAME_JPEG = const(2)  # a camera frame, JPEG
OBJ_FRAME_GRAY = const(3)  # a camera frame, 8-bit grayscale: width u16, height u16, pixels

# VERDICT values (what the board shows)
V_ACCEPTED = const(1)
V_REFUSED = const(2)
V_CHOOSE_BENEFICIARY = const(3)
V_ERROR = const(4)


# HELLO / HELLO_ACK payload: TLV items (tag 1 byte, length 1 byte, value).
# Unknown tags are skipped, so a newer peer can add items.
T_BOARD_ID = const(0x01)  # bytes (1..16)
T_FIRMWARE = const(0x02)  # UTF-8, e.g. "0.1.0"
T_BOARD_NAME = const(0x03)  # UTF-8, the board definition's name
T_CAPS = const(0x04)  # u16 LE capability bits (CAP_*)
T_MAX_PAYLOAD = const(0x05)  # u16 LE: the largest payload this side can receive
T_VERSIONS = const(0x06)  # u8 min, u8 max protocol versions spoken
T_NONCE = const(0x07)  # 8 bytes: this session attempt (HELLO_ACK echoes it)
T_HEARTBEAT_MS = const(0x08)  # u16 LE: HELLO_ACK only; both sides' keep-alive period
T_FREE_HEAP = const(0x09)  # u32 LE: the board's free heap at HELLO
T_HOST_NONCE = const(0x0A)  # 8 bytes: HELLO_ACK only; fresh per session, for PAIR_PROOF

CAP_NFC = const(0x0001)
CAP_CAMERA = const(0x0002)
CAP_QR_DECODE = const(0x0004)
CAP_DISPLAY = const(0x0008)
CAP_BUZZER = const(0x0010)
CAP_LED = const(0x0020)


# HELLO_REJECT reason (first payload byte), then u8 min, u8 max, UTF-8 text.
REJECT_VERSION = const(1)
REJECT_MALFORMED = const(2)
REJECT_UNKNOWN_BOARD = const(3)

# LOG levels
LOG_DEBUG = const(10)
LOG_INFO = const(20)
LOG_WARNING = const(30)
LOG_ERROR = const(40)

# ERROR frame codes (board -> host or host -> board)
E_LINK_NOISE = const(0x0001)  # the board counted bad frames from the host
E_WATCHDOG = const(0x0002)  # the board restarted after a watchdog reset
E_BAD_REQUEST = const(0x0003)  # a sequenced frame the receiver cannot act on


def tlv_put(out, o, tag, value):
    """Append one TLV item to bytearray out at offset o; return the new offset."""
    n = len(value)
    if n > 255:
        raise ValueError("TLV value too long")
    out[o] = tag
    out[o + 1] = n
    out[o + 2 : o + 2 + n] = value
    return o + 2 + n


def tlv_parse(payload):
    """TLV items as a dict tag -> bytes; ValueError on a truncated item or a repeated tag."""
    items = {}
    i = 0
    n = len(payload)
    while i < n:
        if i + 2 > n:
            raise ValueError("truncated TLV header")
        tag = payload[i]
        ln = payload[i + 1]
        if i + 2 + ln > n:
            raise ValueError("truncated TLV value")
        if tag in items:
            raise ValueError("repeated TLV tag %d" % tag)
        items[tag] = bytes(payload[i + 2 : i + 2 + ln])
        i += 2 + ln
    return items


def u16(b):
    return b[0] | (b[1] << 8)


def u16_bytes(v):
    return bytes((v & 0xFF, (v >> 8) & 0xFF))
