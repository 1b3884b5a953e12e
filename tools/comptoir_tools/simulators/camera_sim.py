"""The simulated camera: a phone screen showing a QR code, seen by an OV2640-class camera.

    cam = CameraSim(seed=1, resolution="VGA", fmt="jpeg")
    frame = cam.frame(text, level=2)        # Frame(kind, width, height, data, params)
    frame.payload()                          # the object bytes the board forwards

A frame is rendered in four stages, each seeded from (seed, frame index):
 1. the phone: the QR code (segno, ECC M, as a wallet app draws it) on a white screen with
    its quiet zone, inside a dark bezel;
 2. geometry: the phone placed on the counter at a distance (scale), rotated in plane,
    tilted (perspective), off-centre; rendered at 2x and box-downsampled, as a sensor
    integrates light over each pixel;
 3. optics and light: defocus blur, exposure (gain, offset, gamma), a glare spot on the glass,
    a finger over part of the screen;
 4. the sensor: noise, 8-bit quantisation, then the board's output format (grayscale bytes
    or JPEG at the configured quality).

Degradation levels (`LEVELS`; ranges drawn uniformly per frame; the full table is in
docs/qr.md): scale is the QR code's width as a fraction of the frame width (shrunk when the
rotated code would leave the frame: people aim), rotation in degrees either way, tilt the
perspective corner displacement as a fraction of the code, blur a Gaussian radius in output
pixels, noise a sigma in 8-bit levels, glare the peak added light, gain the exposure, finger
how far a finger reaches into the code (negative: only into the quiet zone; -1: none).

| level | name | scale | rot | tilt | blur | noise | glare | gain | finger | JPEG q |
|---|---|---|---|---|---|---|---|---|---|---|
| 0 | ideal | .55–.65 | 3 | .02 | 0–.3 | 0–1 | 0 | .95–1.05 | none | 90 |
| 1 | good | .45–.65 | 15 | .05 | .3–.7 | 1–3 | 0–.2 | .8–1.1 | none | 80 |
| 2 | typical | .40–.70 | 45 | .02–.08 | .5–1 | 2–5 | .1–.4 | .6–1.2 | −.08–0 | 70 |
| 3 | poor | .32–.75 | 180 | .06–.16 | .8–1.4 | 4–8 | .3–.6 | .45–1.35 | −.02–.06 | 60 |
| 4 | hostile | .25–.80 | 180 | .10–.22 | 1.2–2.2 | 6–12 | .5–.85 | .3–1.5 | .04–.12 | 50 |

Levels 0–2 are what a counter sees in normal use (a person holds the phone roughly facing
the camera); 3 is a careless presentation; 4 is beyond what a reader is expected to read.
The twin feeds frames to the firmware's unix camera backend through `FrameFile` (the file
format is in firmware/camera/unix.py).
"""

from __future__ import annotations

import io
import math
import os
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import segno
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from comptoir_link import frames as F

RESOLUTIONS: dict[str, tuple[int, int]] = {"QVGA": (320, 240), "VGA": (640, 480)}
Format = Literal["jpeg", "gray"]


@dataclass(frozen=True, slots=True)
class Level:
    name: str
    scale: tuple[float, float]
    rotation: tuple[float, float]  # degrees, either direction
    tilt: tuple[float, float]  # corner displacement, fraction of the phone's size
    blur: tuple[float, float]  # Gaussian radius, output pixels
    noise: tuple[float, float]  # sigma, 8-bit levels
    glare: tuple[float, float]  # peak added light, fraction of full scale
    gain: tuple[float, float]
    # How far a finger reaches into the QR code, fraction of its side: negative stops in the
    # quiet zone, -1 is no finger.
    occlusion: tuple[float, float]
    jpeg_quality: int


LEVELS: tuple[Level, ...] = (
    Level("ideal", (0.55, 0.65), (0, 3), (0, 0.02), (0, 0.3), (0, 1), (0, 0), (0.95, 1.05),
          (-1, -1), 90),
    Level("good", (0.45, 0.65), (0, 15), (0, 0.05), (0.3, 0.7), (1, 3), (0, 0.2), (0.8, 1.1),
          (-1, -1), 80),
    Level("typical", (0.40, 0.70), (0, 45), (0.02, 0.08), (0.5, 1.0), (2, 5), (0.1, 0.4),
          (0.6, 1.2), (-0.08, 0.0), 70),
    Level("poor", (0.32, 0.75), (0, 180), (0.06, 0.16), (0.8, 1.4), (4, 8), (0.3, 0.6),
          (0.45, 1.35), (-0.02, 0.06), 60),
    Level("hostile", (0.25, 0.80), (0, 180), (0.10, 0.22), (1.2, 2.2), (6, 12), (0.5, 0.85),
          (0.3, 1.5), (0.04, 0.12), 50),
)
REALISTIC_LEVELS = (0, 1, 2)


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int  # F.OBJ_FRAME_JPEG or F.OBJ_FRAME_GRAY
    width: int
    height: int
    data: bytes  # JPEG file, or width*height gray pixels
    params: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> bytes:
        """The object the board forwards in OBJECT_CHUNKs (docs/protocol.md)."""
        if self.kind == F.OBJ_FRAME_GRAY:
            return struct.pack("<HH", self.width, self.height) + self.data
        return self.data


def qr_module_count(text: str) -> int:
    """Modules per side of the code a phone shows for this text (ECC M)."""
    return segno.make_qr(text, error="m", boost_error=False).symbol_size(border=0)[0]


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (8x8: no numpy needed)."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(n):
            if r != c and m[r][c]:
                f = m[r][c] / m[c][c]
                m[r] = [x - f * y for x, y in zip(m[r], m[c], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


def perspective_coeffs(dst: list[tuple[float, float]], src: list[tuple[float, float]]
                       ) -> list[float]:
    """PIL PERSPECTIVE coefficients mapping output points dst[i] to input points src[i]."""
    a: list[list[float]] = []
    b: list[float] = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        b.append(u)
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b.append(v)
    return _solve(a, b)


def _apply(c: list[float], x: float, y: float) -> tuple[float, float]:
    d = c[6] * x + c[7] * y + 1
    return (c[0] * x + c[1] * y + c[2]) / d, (c[3] * x + c[4] * y + c[5]) / d


class CameraSim:
    """Renders camera frames of a phone showing a QR code. Deterministic for a given seed."""

    def __init__(self, seed: int = 0, *, resolution: str = "VGA", fmt: Format = "jpeg",
                 jpeg_quality: int | None = None) -> None:
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {sorted(RESOLUTIONS)}")
        self.seed = seed
        self.resolution = resolution
        self.size = RESOLUTIONS[resolution]
        self.fmt = fmt
        self.jpeg_quality = jpeg_quality  # None: the level's quality
        self.index = 0
        self._phones: dict[str, Image.Image] = {}
        self._boxes: dict[str, tuple[int, int, int, int]] = {}
        self._modules: dict[str, int] = {}

    # ---------------------------------------------------------------- stage 1
    def phone(self, text: str) -> tuple[Image.Image, tuple[int, int, int, int]]:
        """The phone as a grayscale image, and the QR code's box inside it."""
        if text not in self._phones:
            qr = segno.make_qr(text, error="m", boost_error=False)
            n = qr.symbol_size(border=0)[0]
            # Source modules about as large as the largest rendered ones (2x supersampled
            # VGA): the perspective warp samples bilinearly, which does not filter when
            # it shrinks, so a much larger source would alias.
            scale = max(3, 900 // n)
            buf = io.BytesIO()
            qr.save(buf, kind="png", scale=scale, border=4, dark="black", light="white")
            code = Image.open(io.BytesIO(buf.getvalue())).convert("L")
            side = code.size[0]
            bezel = side // 14
            w, h = side + 2 * bezel, int(side * 1.75) + 2 * bezel
            img = Image.new("L", (w, h), 18)  # black glass and frame
            screen = Image.new("L", (side, int(side * 1.75)), 245)
            draw = ImageDraw.Draw(screen)
            # The app's header bar and a line of text, as on a real screen.
            draw.rectangle((0, 0, side, side // 8), fill=60)
            draw.rectangle((side // 6, side * 1.40, side * 5 // 6, side * 1.46), fill=120)
            top = int(side * 0.3)
            screen.paste(code, (0, top))
            img.paste(screen, (bezel, bezel))
            box = (bezel + 4 * scale, bezel + top + 4 * scale,
                   bezel + 4 * scale + n * scale, bezel + top + 4 * scale + n * scale)
            img = Image.merge("LA", (img, Image.new("L", img.size, 255)))
            if len(self._phones) >= 8:  # a few phones at a time are shown
                self._phones.clear()
            self._phones[text] = img
            self._boxes[text] = box
            self._modules[text] = n
        return self._phones[text], self._boxes[text]

    # ---------------------------------------------------------------- stages 2-4
    def frame(self, text: str, level: int = 2, *, index: int | None = None,
              pose: int | None = None) -> Frame:
        """One exposure. `pose` fixes the scene (placement, light, finger, focus): frames
        with the same pose are a phone held still, differing only by sensor noise; by
        default every frame is a new pose."""
        if index is None:
            index = self.index
            self.index += 1
        rng = random.Random(f"{self.seed}:{index if pose is None else pose}:{level}:"
                            f"{self.resolution}")
        noise_rng = random.Random(f"{self.seed}:{index}:noise")
        lv = LEVELS[level]

        def draw(r: tuple[float, float]) -> float:
            return rng.uniform(*r)

        ow, oh = self.size
        # Supersampling: a sensor pixel integrates light; at VGA modules are 3-6 px and
        # bilinear sampling is close enough, at QVGA (1.5-3 px) it is not.
        ss = 2 if ow < 640 else 1
        W, H = ow * ss, oh * ss
        phone, (qx0, qy0, qx1, qy1) = self.phone(text)
        params: dict[str, Any] = {"level": level, "resolution": self.resolution}

        # Geometry: the QR code's side on the frame, then the phone around it. The person
        # aims at the camera: the code with its quiet zone stays inside the frame, so a
        # large code is shrunk to fit once rotated and tilted.
        angle = math.radians(draw(lv.rotation) * rng.choice((-1, 1)))
        tilt = draw(lv.tilt)
        quiet = 1 + 8 / self._modules[text]
        fit = 0.96 * H / (quiet * (abs(math.cos(angle)) + abs(math.sin(angle)) + 2 * tilt))
        qside = min(draw(lv.scale) * W, fit)
        k = qside / (qx1 - qx0)
        pw, ph = phone.size
        params.update(scale=round(qside / W, 3), rotation=round(math.degrees(angle), 1),
                      tilt=round(tilt, 3))
        # The QR code's centre lands near the frame's centre, with room to stay inside.
        qcx, qcy = (qx0 + qx1) / 2, (qy0 + qy1) / 2
        reach = qside * quiet * (abs(math.cos(angle)) + abs(math.sin(angle)) + 2 * tilt)
        margin_x = max(0.0, (W - reach) / 2)
        margin_y = max(0.0, (H - reach) / 2)
        cx = W / 2 + rng.uniform(-margin_x, margin_x) * 0.9
        cy = H / 2 + rng.uniform(-margin_y, margin_y) * 0.9
        cos, sin = math.cos(angle), math.sin(angle)
        corners_src = [(0.0, 0.0), (pw, 0.0), (pw, ph), (0.0, ph)]
        dst: list[tuple[float, float]] = []
        for x, y in corners_src:
            dx, dy = (x - qcx) * k, (y - qcy) * k
            jx = rng.uniform(-tilt, tilt) * qside
            jy = rng.uniform(-tilt, tilt) * qside
            dst.append((cx + dx * cos - dy * sin + jx, cy + dx * sin + dy * cos + jy))
        coeffs = perspective_coeffs(dst, corners_src)

        # The counter: a mid-gray surface with a soft gradient (lit from one side), made
        # small and enlarged (it has no detail).
        base = rng.uniform(70, 140)
        bg = Image.linear_gradient("L").resize((64, 64)).rotate(rng.uniform(0, 360),
                                                                 fillcolor=128)
        bg = bg.point(lambda v, b=base: int(b + (v - 128) * 0.15)).resize(
            (W, H), Image.Resampling.BILINEAR)
        warped = phone.transform((W, H), Image.Transform.PERSPECTIVE, coeffs,
                                 Image.Resampling.BILINEAR, fillcolor=(0, 0))
        bg.paste(warped.getchannel(0), (0, 0), warped.getchannel(1))
        img = bg

        # A finger over the screen, reaching into the QR code from one side.
        depth = draw(lv.occlusion)
        params["occlusion"] = round(depth, 3)
        if depth > -0.1:  # a finger at all (negative: it stops in the quiet zone)
            img = self._finger(img, rng, depth, perspective_coeffs(corners_src, dst),
                               (qx0, qy0, qx1, qy1))
        img = img.resize((ow, oh), Image.Resampling.BOX)

        # Optics and light.
        blur = draw(lv.blur)
        if blur > 0.05:
            img = img.filter(ImageFilter.GaussianBlur(blur))
        gain = draw(lv.gain)
        offset = rng.uniform(-10, 10)
        gamma = rng.uniform(0.85, 1.15)
        lut = [min(255, max(0, int(255 * ((min(255.0, max(0.0, v * gain + offset)) / 255)
                                          ** gamma)))) for v in range(256)]
        img = img.point(lut)
        glare = draw(lv.glare)
        if glare > 0.01:
            img = self._glare(img, rng, glare, dst, ss)
        noise = draw(lv.noise)
        if noise > 0.05:
            img = self._noise(img, noise_rng, noise)
        params.update(blur=round(blur, 2), gain=round(gain, 2), glare=round(glare, 2),
                      noise=round(noise, 2))

        if self.fmt == "gray":
            return Frame(F.OBJ_FRAME_GRAY, ow, oh, img.tobytes(), params)
        quality = self.jpeg_quality or lv.jpeg_quality
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=quality)
        params["jpeg_quality"] = quality
        return Frame(F.OBJ_FRAME_JPEG, ow, oh, out.getvalue(), params)

    def _finger(self, img: Image.Image, rng: random.Random, depth: float,
                to_frame: list[float], qbox: tuple[int, int, int, int]) -> Image.Image:
        # A finger comes in from the left or right edge of the screen (where a hand holds
        # a phone), at a height that stays clear of the finder patterns' rows, `depth` of
        # the code's side into it. Drawn in phone coordinates, mapped like the phone.
        qx0, qy0, qx1, qy1 = qbox
        side = rng.choice((-1, 1))
        q = qx1 - qx0
        y = (qy0 + qy1) / 2 + rng.uniform(-0.25, 0.25) * q
        edge = qx1 if side > 0 else qx0
        tip = edge - side * depth * q
        far = edge + side * 2.0 * q
        half = 0.11 * q

        def m(x: float, yy: float) -> tuple[float, float]:
            return _apply(to_frame, x, yy)

        draw = ImageDraw.Draw(img)
        skin = rng.randint(120, 190)
        base = tip + side * half  # the rounded tip's centre: its extreme point is `tip`
        draw.polygon([m(base, y - half), m(far, y - half), m(far, y + half), m(base, y + half)],
                     fill=skin)
        arc = [m(base - side * half * math.sin(t), y + half * math.cos(t))
               for t in (i * math.pi / 12 for i in range(13))]
        draw.polygon(arc, fill=skin)
        return img

    def _glare(self, img: Image.Image, rng: random.Random, strength: float,
               dst: list[tuple[float, float]], ss: int) -> Image.Image:
        # A reflection of a ceiling light on the phone's glass: a soft bright disc that adds
        # light (it washes out the dark modules under it).
        w, h = img.size
        xs = [p[0] / ss for p in dst]
        ys = [p[1] / ss for p in dst]
        gx = rng.uniform(min(xs), max(xs))
        gy = rng.uniform(min(ys), max(ys))
        radius = rng.uniform(0.08, 0.22) * w
        # radial_gradient is 0 at the centre and 255 at the inscribed circle (and beyond in
        # the corners): a smooth fall-off to nothing at that circle.
        spot = Image.radial_gradient("L").resize((int(2 * radius), int(2 * radius)))
        spot = spot.point(lambda v, s=strength: int(255 * s * max(0.0, 1 - v / 255) ** 2))
        layer = Image.new("L", (w, h), 0)
        layer.paste(spot, (int(gx - radius), int(gy - radius)))
        return ImageChops.add(img, layer)

    def _noise(self, img: Image.Image, rng: random.Random, sigma: float) -> Image.Image:
        # Seeded noise without numpy: the sum of two uniform byte fields is triangular
        # (sigma 255/sqrt(24) ≈ 52), close enough to Gaussian sensor noise, rescaled by a LUT.
        w, h = img.size
        a = Image.frombytes("L", (w, h), rng.randbytes(w * h))
        b = Image.frombytes("L", (w, h), rng.randbytes(w * h))
        tri = ImageChops.add(a, b, scale=2.0)
        scaled = tri.point(lambda v, s=sigma: max(0, min(255, int(128 + (v - 127.5) * s / 52))))
        return ImageChops.add(img, scaled, scale=1.0, offset=-128)


class FrameFile:
    """Publishes frames for the ESP32 port stand-in's `camera` module (launch.py `--camera PATH`).

    The file holds one frame: a 16-byte header then the data (esp32_port/port/camera.py).
    Each frame is written to a temporary file and renamed over PATH, so the board never
    reads half a frame; the sequence number tells it a new exposure was taken.
    """

    MAGIC = b"CF"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.seq = 0

    def publish(self, frame: Frame) -> int:
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        header = self.MAGIC + struct.pack("<BBHHII", frame.kind, 0, frame.width, frame.height,
                                          self.seq, len(frame.data))
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(header + frame.data)
        os.replace(tmp, self.path)
        return self.seq

    def clear(self) -> None:
        """Nothing in front of the camera: no file (the backend reports no frame)."""
        self.path.unlink(missing_ok=True)
