# Unix backend, for the software twin: the simulated camera
# (tools/comptoir_tools/camera_sim.py, FrameFile) keeps the latest frame in one
# file, named on the firmware's command line with --camera PATH. The file is
#   "CF", kind u8 (2 JPEG, 3 gray), 0, width u16, height u16, seq u32, length u32
# (little-endian), then the frame bytes. The simulator writes a new file and
# renames it over PATH, so a frame is never read half-written; the open file
# keeps the frame being forwarded even when the next one replaces it. A new
# sequence number is a new exposure; no file is an empty camera.
import builtins
import struct

_HEADER = 16


class FileCamera:
    def __init__(self, path, spec):
        self.path = path
        self.kind = 0
        self.width = 0
        self.height = 0
        self._hdr = bytearray(_HEADER)
        self._seq = -1
        self._size = 0
        self._f = None

    def capture(self):
        if self._f is not None:
            self.release()
        try:
            f = builtins.open(self.path, "rb")
        except OSError:
            return 0
        n = f.readinto(self._hdr)
        if n != _HEADER or self._hdr[0] != 0x43 or self._hdr[1] != 0x46:  # "CF"
            f.close()
            return 0
        kind, _, w, h, seq, size = struct.unpack_from("<BBHHII", self._hdr, 2)
        if seq == self._seq or not size:
            f.close()  # the same exposure: the camera has nothing new
            return 0
        self._seq = seq
        self.kind, self.width, self.height, self._size = kind, w, h, size
        self._f = f
        return size

    def frame(self):
        return None  # not in memory: a VGA gray frame would not fit the twin's heap

    def read(self, offset, buf):
        n = self._size - offset
        if n <= 0 or self._f is None:
            return 0
        self._f.seek(_HEADER + offset)
        if n >= len(buf):
            return self._f.readinto(buf) or 0
        return self._f.readinto(memoryview(buf)[:n]) or 0

    def release(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def close(self):
        self.release()
