"""Camera frames to QR texts, with pyzbar (libzbar) over Pillow.

Frames come from outside (a board, or anything on its serial port), so the image is checked
before it is decoded: JPEG only by its header, dimensions bounded before any pixel is
decompressed, grayscale frames exactly width x height bytes.
"""

from __future__ import annotations

import io
import struct

from PIL import Image, UnidentifiedImageError
from pyzbar.pyzbar import ZBarSymbol
from pyzbar.pyzbar import decode as zbar_decode

from comptoir_link import frames as F

MAX_SIDE = 2048  # OV2640 UXGA is 1600x1200; anything larger is not from our camera
_GRAY_HEADER = struct.Struct("<HH")


class DecodeError(ValueError):
    """The frame is not an image we accept (the board or the line is at fault)."""


def frame_image(kind: int, data: bytes) -> Image.Image:
    """The frame as an 8-bit grayscale image."""
    if kind == F.OBJ_FRAME_GRAY:
        if len(data) < _GRAY_HEADER.size:
            raise DecodeError("grayscale frame shorter than its header")
        w, h = _GRAY_HEADER.unpack_from(data)
        if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
            raise DecodeError(f"grayscale frame of {w}x{h}")
        if len(data) != _GRAY_HEADER.size + w * h:
            raise DecodeError(f"grayscale {w}x{h} frame with {len(data) - 4} pixel bytes")
        return Image.frombytes("L", (w, h), data[_GRAY_HEADER.size:])
    if kind == F.OBJ_FRAME_JPEG:
        if not data.startswith(b"\xff\xd8"):
            raise DecodeError("not a JPEG (no SOI marker)")
        try:
            img = Image.open(io.BytesIO(data), formats=("JPEG",))
            w, h = img.size
            if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
                raise DecodeError(f"JPEG frame of {w}x{h}")
            # Ask the JPEG decoder for luminance only: QR codes need nothing else, and it
            # skips the colour conversion.
            img.draft("L", (w, h))
            img = img.convert("L")
            img.load()
        except DecodeError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                Image.DecompressionBombError) as exc:
            raise DecodeError(f"JPEG frame does not decode: {type(exc).__name__}") from None
        return img
    raise DecodeError(f"object kind {kind} is not a camera frame")


# zbar's finder-pattern scan is sensitive to the module size in pixels: a frame it misses is
# often read once shrunk (measured on the simulated corpus: 3/4 recovers about half of the
# realistic-level misses, 0.6 a few more). Tried only when the full frame gives nothing.
FALLBACK_SCALES = (0.75, 0.6)


def decode_image(img: Image.Image, fallback_scales: tuple[float, ...] = FALLBACK_SCALES
                 ) -> list[bytes]:
    """The data of every QR code zbar finds, in its order, without repeats."""
    out: list[bytes] = []
    for scale in (1.0, *fallback_scales):
        src = img if scale == 1.0 else img.resize(
            (max(1, int(img.width * scale)), max(1, int(img.height * scale))),
            Image.Resampling.BOX)
        for sym in zbar_decode(src, symbols=[ZBarSymbol.QRCODE]):
            if sym.data not in out:
                out.append(sym.data)
        if out:
            break
    return out


def decode_frame(kind: int, data: bytes,
                 fallback_scales: tuple[float, ...] = FALLBACK_SCALES) -> list[bytes]:
    return decode_image(frame_image(kind, data), fallback_scales)
