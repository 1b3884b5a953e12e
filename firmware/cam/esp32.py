# ESP32 backend over the micropython-camera-API user C module (cnadler86),
# module `camera`, class `Camera`. It needs a firmware image built with that
# module (the project's prebuilt release images, docs/qr.md) and PSRAM: the
# driver keeps its frame buffers there, outside the MicroPython heap. Only this
# file imports it.
import camera as hw  # type: ignore  # the C module, absent from stock firmware

from cam import KIND_GRAY, KIND_JPEG, SIZES, settings

# Board definitions (boards/*.json, the schema's "camera" object) name pins as
# the camera connector does; the C module wants its own keyword names.
_PIN_KW = (("pclk", "pclk_pin"), ("vsync", "vsync_pin"), ("href", "href_pin"),
           ("sda", "sda_pin"), ("scl", "scl_pin"), ("xclk", "xclk_pin"),
           ("pwdn", "powerdown_pin"), ("reset", "reset_pin"))


class Esp32Camera:
    def __init__(self, spec):
        res, gray, quality = settings(spec)
        self.kind = KIND_GRAY if gray else KIND_JPEG
        self.width, self.height = SIZES[res]
        fb_count = spec.get("fb_count", 1)
        kw = {
            "pixel_format": hw.PixelFormat.GRAYSCALE if gray else hw.PixelFormat.JPEG,
            "frame_size": getattr(hw.FrameSize, res),
            "jpeg_quality": quality,  # percent: higher is better
            "fb_count": fb_count,
            # LATEST needs two buffers; with one, WHEN_EMPTY (the frame may be one
            # period old, which a QR read does not mind).
            "grab_mode": hw.GrabMode.LATEST if fb_count > 1 else hw.GrabMode.WHEN_EMPTY,
        }
        # A generic firmware image needs the pins; a board image has them built in.
        pins = spec.get("pins", {})
        if "d0" in pins:
            kw["data_pins"] = [pins["d%d" % i] for i in range(8)]
        for name, arg in _PIN_KW:
            if name in pins and pins[name] >= 0:
                kw[arg] = pins[name]
        if "xclk_hz" in spec:
            kw["xclk_freq"] = spec["xclk_hz"]
        self._hw = hw.Camera(**kw)
        # The frame being forwarded is ours, not the driver's: a frame buffer held
        # for the seconds a frame takes to send makes the driver print
        # "cam_hal: EV-VSYNC-OVF" on UART0 with the ROM printf, into the host link
        # of an ESP32-CAM (review finding 12), and the driver's view is signed
        # (typecode 'b', modcamera.c). One copy per frame sent, into a buffer made
        # once (camera boards have PSRAM: MicroPython's heap is megabytes).
        self._buf = bytearray(self.width * self.height)
        self._mv = None

    def capture(self):
        # Never block the loop for a frame period (up to 330 ms for gray VGA).
        if not self._hw.frame_available():
            return 0
        mv = self._hw.capture()  # a memoryview of the driver's buffer
        if mv is None or not len(mv):
            return 0
        n = len(mv)
        if n > len(self._buf):
            self._hw.free_buffer()
            return 0
        self._buf[:n] = mv
        self._hw.free_buffer()  # back to the driver at once
        self._mv = memoryview(self._buf)[:n]
        return n

    def frame(self):
        return self._mv

    def read(self, offset, buf):
        mv = self._mv
        if mv is None:
            return 0
        n = len(mv) - offset
        if n > len(buf):
            n = len(buf)
        if n <= 0:
            return 0
        buf[:n] = mv[offset : offset + n]
        return n

    def release(self):
        self._mv = None

    def close(self):
        self.release()
        self._hw.deinit()
