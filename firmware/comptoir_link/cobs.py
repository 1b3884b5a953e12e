# Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999).
# Chosen over SLIP because its overhead is bounded (one byte per 254) whatever
# the data — camera frames and signatures are random-looking bytes — and 0x00
# never appears inside a frame, so a receiver resynchronises at the next 0x00.
#
# Both functions work on caller-owned buffers: the firmware calls them with
# preallocated bytearrays and allocates nothing.


def max_encoded_len(n):
    """Worst-case encoded size of n bytes, without the 0x00 delimiter."""
    return n + n // 254 + 1


def encode_into(src, n, out):
    """COBS-encode src[0:n] into out; return the encoded length (no delimiter).

    out must hold max_encoded_len(n) bytes.
    """
    code_at = 0  # where the current block's code byte goes
    o = 1
    code = 1
    i = 0
    while i < n:
        b = src[i]
        i += 1
        if b == 0:
            out[code_at] = code
            code_at = o
            o += 1
            code = 1
        else:
            out[o] = b
            o += 1
            code += 1
            # A full block (254 data bytes) ends without an implicit zero; start
            # a new block only if input remains, as the reference encoding does.
            if code == 0xFF and i < n:
                out[code_at] = code
                code_at = o
                o += 1
                code = 1
    out[code_at] = code
    return o


class Decoder:
    """Streaming COBS decoder: bytes in, whole frames out, into one buffer.

    feed_byte() returns:
      n >= 0   a complete frame of n decoded bytes is in self.buf[0:n]
      MORE     keep feeding
      TOO_LONG the frame overflowed the buffer (the rest is skipped to the next 0x00)
      BAD      a malformed block (a truncated frame or line noise)
    An empty frame (two delimiters in a row) is ignored, so senders may lead
    with a 0x00 to flush noise out of the receiver.
    """

    MORE = -1
    TOO_LONG = -2
    BAD = -3

    def __init__(self, size):
        self.buf = bytearray(size)
        self._size = size
        self.reset()

    def reset(self):
        self._n = 0  # decoded bytes so far
        self._left = 0  # data bytes left in the current block
        self._code = 0xFF  # no implicit zero before the first block
        self._raw = 0  # encoded bytes seen in this frame
        self._skip = False  # skipping an oversized frame

    def feed_byte(self, b):
        if b == 0:
            raw, left, n, skip = self._raw, self._left, self._n, self._skip
            self.reset()
            if skip:
                return -2
            if raw == 0:
                return -1
            if left:
                return -3
            return n
        self._raw += 1
        if self._skip:
            return -1
        if self._left == 0:
            if self._code != 0xFF:
                if not self._put(0):
                    return -1
            self._code = b
            self._left = b - 1
            return -1
        self._left -= 1
        self._put(b)
        return -1

    def _put(self, b):
        if self._n >= self._size:
            self._skip = True
            return False
        self.buf[self._n] = b
        self._n += 1
        return True
