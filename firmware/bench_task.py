# The link benchmark's board side (`make bench`): on BENCH_REQUEST, send `count`
# BENCH_DATA frames of `size` bytes as fast as the link's window allows, then
# BENCH_DONE. Loaded only when the host asks for it, so a reader in service
# does not pay its heap.
from comptoir_link import frames as F


class BenchTask:
    def __init__(self, out_buf):
        self._out = out_buf
        self._mv = memoryview(out_buf)
        # The filler from offset 2 repeats every 256 bytes: one period, copied into the
        # payload before each frame. The payload buffer is the application's, and ERROR or
        # STATUS may be built in it between two frames.
        self._period = bytearray(256)
        for i in range(256):
            self._period[i] = ((i + 2) * 7 + 1) & 0xFF
        self._period_mv = memoryview(self._period)
        self.left = 0
        self._size = 0
        self._index = 0
        self._done_owed = False

    def on_request(self, payload, tx_limit):
        self.left = F.u16(payload[0:2])
        self._size = max(2, min(F.u16(payload[2:4]), tx_limit, len(self._out)))
        self._index = 0
        self._done_owed = False

    def _fill(self):
        # Slice copies, at most 16 for a 4 kB payload; only the last, partial one makes a
        # small view (no copy of the data).
        mv, size, i = self._mv, self._size, 2
        while i + 256 <= size:
            mv[i : i + 256] = self._period
            i += 256
        if i < size:
            mv[i:size] = self._period_mv[: size - i]

    def cancel(self):
        self.left = 0
        self._done_owed = False

    def pump(self, link):
        while self.left and link.can_send():
            k = self._index
            self._fill()
            self._out[0] = k & 0xFF
            self._out[1] = (k >> 8) & 0xFF
            link.send(F.BENCH_DATA, self._mv, self._size)
            self._index += 1
            self.left -= 1
            if not self.left:
                self._done_owed = True
        if self._done_owed and link.can_send():
            link.send(F.BENCH_DONE, F.u16_bytes(self._index))
            self._done_owed = False
