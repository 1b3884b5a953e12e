# `camera` of cnadler86/micropython-camera-API (HEAD 8df3f70, Jan 2026), over
# the twin's simulated camera: tools/comptoir_tools/simulators/camera_sim.py FrameFile keeps
# the latest exposure in one file ("CF", kind, 0, width u16, height u16, seq u32,
# length u32, then the bytes); a new seq is a new exposure.
#
# Not in the image: launch.py --no-camera-module leaves this module out, and
# `import camera` raises ImportError as on a stock ESP32_GENERIC build.
import struct

import _port
from _port import CFG, uart0_print


class PixelFormat:
    RGB565 = 0
    YUV422 = 1
    YUV420 = 2
    GRAYSCALE = 3
    JPEG = 4
    RGB888 = 5


class FrameSize:
    R96X96 = 0
    QQVGA = 1
    QCIF = 3
    HQVGA = 4
    R240X240 = 5
    QVGA = 6
    CIF = 8
    HVGA = 9
    VGA = 10


class GrabMode:
    WHEN_EMPTY = 0
    LATEST = 1


_SIZES = {1: (160, 120), 6: (320, 240), 10: (640, 480), 0: (96, 96), 5: (240, 240)}
# modcamera_api.c camera_make_new, l.79-107: the keywords the constructor takes.
_KW = ("data_pins", "pclk_pin", "vsync_pin", "href_pin", "sda_pin", "scl_pin", "xclk_pin",
       "xclk_freq", "powerdown_pin", "reset_pin", "pixel_format", "frame_size",
       "jpeg_quality", "fb_count", "grab_mode", "init")
_HEADER = 16


class Camera:
    def __init__(self, **kw):
        for k in kw:
            if k not in _KW:
                raise TypeError("unexpected keyword argument '%s'" % k)
        self._fmt = kw.get("pixel_format", PixelFormat.RGB565)
        self._size = kw.get("frame_size", FrameSize.QQVGA)
        w, h = _SIZES.get(self._size, (320, 240))
        self.fb_count = kw.get("fb_count", 1)
        # Gray is one byte a pixel. esp32-camera gives a JPEG buffer a fraction of
        # that (cam_hal.c); not modelled: the twin's simulated JPEGs are larger
        # than an OV2640's at the boards' quality, so a JPEG gets a gray-sized one.
        self._fb_size = w * h
        self._path = CFG.get("camera")
        if CFG.get("camera_fault"):
            # modcamera_api.c l.209-211: no first frame (ribbon, pins, no PSRAM).
            raise OSError("Failed to capture initial frame. Run reconfigure() or reinit()")
        # Frame buffers in PSRAM (heap_caps_malloc MALLOC_CAP_SPIRAM), not on
        # MicroPython's heap.
        self._fbs = []
        for _ in range(self.fb_count):
            fb = _port.psram_fb(self._fb_size)
            if fb is None:
                raise OSError("Camera init failed: frame buffer allocation")
            self._fbs.append(fb)
        self._hdr = bytearray(_HEADER)
        self._seq = -1
        self._seen = -1
        self._held = None
        self._next_fb = 0
        self._last_check = -1000
        _port.add_device(self, None)

    def _peek(self):
        """(seq, length) of the exposure in the file, or (-1, 0)."""
        try:
            f = _port.real_open(self._path, "rb")
        except (OSError, TypeError):
            return -1, 0
        try:
            if f.readinto(self._hdr) != _HEADER or self._hdr[0] != 0x43:
                return -1, 0
            _, _, _, _, seq, size = struct.unpack_from("<BBHHII", self._hdr, 2)
            return seq, size
        finally:
            f.close()

    def _service(self):
        # esp32-camera keeps capturing into its frame buffers; while the
        # application holds one past a new VSYNC with no free buffer, the ISR
        # prints "cam_hal: EV-VSYNC-OVF" through the ROM printf, on UART0,
        # whatever esp_log_level_set says (finding 12, from third-party reports).
        if self._held is None:
            return
        now = _port.now_ms()
        if now - self._last_check < 100:
            return
        self._last_check = now
        seq, _ = self._peek()
        if seq >= 0 and seq != self._seen and seq != self._seq:
            self._seen = seq
            uart0_print("cam_hal: EV-VSYNC-OVF\r\n")

    def frame_available(self):
        seq, size = self._peek()
        return seq >= 0 and seq != self._seq and size > 0

    def capture(self):
        # modcamera.c: give back the previous frame buffer, take the next one;
        # the result is a memoryview of typecode 'b' over the driver's buffer (l.220).
        self.free_buffer()
        try:
            f = _port.real_open(self._path, "rb")
        except (OSError, TypeError):
            return None
        try:
            if f.readinto(self._hdr) != _HEADER or self._hdr[0] != 0x43:
                return None
            _, _, _, _, seq, size = struct.unpack_from("<BBHHII", self._hdr, 2)
            if seq == self._seq or not size:
                return None
            self._seq = seq
            if size > self._fb_size:
                _port.idf_log(2, "cam_hal", "NO-EOI")  # larger than its buffer: lost
                return None
            fb = self._fbs[self._next_fb]
            self._next_fb = (self._next_fb + 1) % len(self._fbs)
            mv = fb[:size]
            f.readinto(mv)
        finally:
            f.close()
        self._held = mv
        return mv

    def free_buffer(self):
        self._held = None

    def deinit(self):
        self._held = None

    def reconfigure(self, **kw):
        pass

    def get_pixel_format(self):
        return self._fmt

    def get_frame_size(self):
        return self._size
