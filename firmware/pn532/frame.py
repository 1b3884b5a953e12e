# PN532 host-interface frames (NXP PN532 user manual UM0701-02 §6.2.1): the
# same bytes on HSU, SPI and I2C.
#
#   normal    00 | 00 FF | LEN | LCS | TFI data... | DCS | 00
#   extended  00 | 00 FF | FF FF | LENhi LENlo | LCS | TFI data... | DCS | 00
#   ACK       00 00 FF 00 FF 00        NACK   00 00 FF FF 00 00
#   error     00 00 FF 01 FF 7F 81 00  (a normal frame whose TFI is 7F)
#
# LEN counts TFI + data; LEN + LCS = 0 (extended: LENhi + LENlo + LCS = 0);
# TFI + data + DCS = 0, all mod 256. TFI is D4 host -> chip, D5 chip -> host.
#
# The decoder works on a buffer that starts at the start code (00 FF), which is
# how the driver keeps its receive buffer after synchronising: that way it can
# ask the transport for exactly the bytes of one frame and never read into the
# next one.
from comptoir_link.compat import const
from pn532.errors import PN532FrameError

TFI_HOST = const(0xD4)
TFI_CHIP = const(0xD5)
TFI_ERROR = const(0x7F)
# The largest TFI + data the chip handles (NXP AN10449, nfcpy): 265 bytes.
MAX_BODY = const(265)
# Bytes of a frame around its body: extended header 8 + DCS + postamble.
OVERHEAD = const(10)
MAX_FRAME = const(275)
NORMAL_MAX = const(255)  # a normal frame's LEN is at most 254 (FF marks extended/NACK)

ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"

# Frame kinds returned by decode().
ACK_FRAME = const(1)
NACK_FRAME = const(2)
DATA_FRAME = const(3)
ERROR = const(4)


def encode(out, tfi, body, n):
    """Write the frame for TFI + body[0:n] into out; return the frame's length.

    out must hold n + 10 bytes. Normal frames up to LEN 254, extended above.
    """
    length = n + 1
    if n < 1 or length > MAX_BODY:
        raise ValueError("frame body must be 1..264 bytes after the TFI")
    out[0] = 0x00
    out[1] = 0x00
    out[2] = 0xFF
    if length < NORMAL_MAX:
        out[3] = length
        out[4] = (-length) & 0xFF
        i = 5
    else:
        out[3] = 0xFF
        out[4] = 0xFF
        out[5] = length >> 8
        out[6] = length & 0xFF
        out[7] = (-(out[5] + out[6])) & 0xFF
        i = 8
    out[i] = tfi
    s = tfi
    for k in range(n):
        b = body[k]
        out[i + 1 + k] = b
        s += b
    i += 1 + n
    out[i] = (-s) & 0xFF
    out[i + 1] = 0x00
    return i + 2


def find_start(buf, have):
    """Index of the first 00 FF start code in buf[0:have], or -1."""
    for i in range(have - 1):
        if buf[i] == 0x00 and buf[i + 1] == 0xFF:
            return i
    return -1


def needed(buf, have):
    """For buf starting at a start code: the frame's total size from there, or
    the bytes needed to know it (when fewer than that are in buf[0:have]).

    Raises PN532FrameError on a bad length checksum.
    """
    if have < 4:
        return 4
    ln = buf[2]
    lcs = buf[3]
    if ln == 0x00 and lcs == 0xFF:
        return 5  # ACK: 00 FF 00 FF 00
    if ln == 0xFF and lcs == 0x00:
        return 5  # NACK: 00 FF FF 00 00
    if ln == 0xFF and lcs == 0xFF:
        if have < 7:
            return 7
        if (buf[4] + buf[5] + buf[6]) & 0xFF:
            raise PN532FrameError("extended frame: bad length checksum")
        length = (buf[4] << 8) | buf[5]
        if length < 1 or length > MAX_BODY:
            raise PN532FrameError("extended frame: length %d out of range" % length)
        return 7 + length + 2
    if (ln + lcs) & 0xFF:
        raise PN532FrameError("bad length checksum")
    if ln == 0:
        raise PN532FrameError("empty frame")
    return 4 + ln + 2


def decode(buf, n):
    """Check a whole frame buf[0:n] (starting at its start code).

    Returns (kind, offset of TFI, LEN); raises PN532FrameError when corrupt.
    """
    total = needed(buf, n)
    if total > n:
        raise PN532FrameError("truncated frame")
    if buf[total - 1] != 0x00:
        raise PN532FrameError("bad postamble")
    if total == 5:
        return (ACK_FRAME if buf[2] == 0x00 else NACK_FRAME), 0, 0
    if buf[2] == 0xFF and buf[3] == 0xFF:
        off = 7
        length = (buf[4] << 8) | buf[5]
    else:
        off = 4
        length = buf[2]
    s = 0
    for k in range(off, off + length + 1):
        s += buf[k]
    if s & 0xFF:
        raise PN532FrameError("bad data checksum")
    if length == 1 and buf[off] == TFI_ERROR:
        return ERROR, off, length
    return DATA_FRAME, off, length


def parse(data):
    """Decode a complete frame given as bytes with any leading bytes (preamble,
    noise). Returns (kind, body) where body is TFI + data as bytes (b"" for
    ACK/NACK/error). For tests and tools; the driver streams instead."""
    start = find_start(data, len(data))
    if start < 0:
        raise PN532FrameError("no start code")
    mv = memoryview(data)[start:]
    kind, off, length = decode(mv, len(mv))
    if needed(mv, len(mv)) != len(mv):
        raise PN532FrameError("trailing bytes after the frame")
    if kind != DATA_FRAME:
        return kind, b""
    return kind, bytes(mv[off:off + length])
