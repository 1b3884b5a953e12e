# The camera layer: one interface over the ESP32 camera module (in the twin, the
# ESP32 port stand-in's `camera`, fed by the simulated camera). Named `cam`,
# not `camera`: the ESP32 C module is `camera`, and MicroPython resolves a
# built-in module before any package on the filesystem.
#
#   c = cam.open(board)                        # None when the board has no camera
#   n = c.capture()        # > 0: a new frame of n bytes is held; 0: none yet
#   c.kind, c.width, c.height                  # KIND_JPEG / KIND_GRAY, pixels
#   k = c.read(offset, mv)                     # copy frame bytes at offset into mv
#   c.frame()              # the held frame as a memoryview
#   c.release()            # give the frame back (the driver reuses its buffer)
#   dec = cam.decoder()    # an on-board QR decoder, or None (see decoder())
#
# The board definition's "camera" object configures it (docs/qr.md):
#   {"model": "OV2640", "resolution": "QVGA"|"VGA", "format": "jpeg"|"gray",
#    "quality": 85, "fb_count": 1, "max_fps": 5, "pins": {...}}
from comptoir_link.compat import const

KIND_JPEG = const(2)  # = frames.OBJ_FRAME_JPEG
KIND_GRAY = const(3)  # = frames.OBJ_FRAME_GRAY
SIZES = {"QQVGA": (160, 120), "QVGA": (320, 240), "VGA": (640, 480)}


def settings(spec):
    """(resolution, grayscale?, JPEG quality in percent) from a camera object.

    Board definitions use the schema's keys ("frame_size": "vga", "pixel_format":
    "jpeg"|"grayscale", "jpeg_quality": 4..63, esp32-camera's scale where lower is
    better); the twin's short form uses "resolution", "format", "quality" (percent).
    """
    res = spec.get("resolution") or spec.get("frame_size", "vga")
    res = res.upper()
    if res not in SIZES:
        raise ValueError("camera resolution %r not in %r" % (res, tuple(SIZES)))
    fmt = spec.get("format") or spec.get("pixel_format", "jpeg")
    if fmt not in ("jpeg", "gray", "grayscale"):
        # Anything else used to configure JPEG without a word (finding 11).
        raise ValueError("camera format %r not in ('jpeg', 'grayscale')" % fmt)
    gray = fmt in ("gray", "grayscale")
    if "quality" in spec:
        quality = spec["quality"]
    elif "jpeg_quality" in spec:
        quality = 100 - (spec["jpeg_quality"] * 100) // 63
    else:
        quality = 85
    return res, gray, quality


def spec_of(board):
    spec = board.definition.get("camera")
    if spec is None and "camera" in board.definition.get("features", ()):
        spec = {}
    return spec


def open(board):
    """The board's camera, or None. (The twin's camera is behind the ESP32 port
    stand-in's `camera` module, fed by the simulated camera.)"""
    spec = spec_of(board)
    if spec is None:
        return None
    # A stock image has no `camera` module (ImportError); Camera() raises OSError
    # when the sensor gives no first frame (micropython-camera-API modcamera_api.c).
    # Either way the board runs without its camera: the link and NFC must not go
    # down with it (review finding 2).
    try:
        from cam.esp32 import Esp32Camera

        return Esp32Camera(spec)
    except (ImportError, OSError) as e:
        if board.log:
            print("camera: none (%s: %s)" % (type(e).__name__, e), file=board.log)
        return None


class _ModuleDecoder:
    """An on-board decoder module (a quirc user C module, say, named qrdecode)
    with decode(gray_buffer, width, height) -> bytes/str or None."""

    def __init__(self, mod):
        self._mod = mod

    def decode(self, c):
        if c.kind != KIND_GRAY:
            return None
        mv = c.frame()
        if mv is None:
            return None
        text = self._mod.decode(mv, c.width, c.height)
        if text is None:
            return None
        return text.encode() if isinstance(text, str) else bytes(text)


def decoder():
    """The on-board QR decoder when this firmware build has one, else None: then
    frames are forwarded and the host decodes them."""
    try:
        import qrdecode  # type: ignore  # not in stock builds
    except ImportError:
        return None
    return _ModuleDecoder(qrdecode)
