"""The simulated camera: seeded, frames as the board gives them, levels ordered."""

from __future__ import annotations

import io
import itertools
import struct
from pathlib import Path

from PIL import Image

from comptoir_link import frames as F
from comptoir_tools.simulators.camera_sim import LEVELS, CameraSim, FrameFile, perspective_coeffs

TEXT = "CV1:" + "ABCDEFGHIJ0123456789" * 26  # 524 characters, as a presentation


def test_same_seed_same_frames_other_seed_other_frames() -> None:
    a = CameraSim(5, fmt="gray").frame(TEXT, 2, index=3)
    b = CameraSim(5, fmt="gray").frame(TEXT, 2, index=3)
    c = CameraSim(6, fmt="gray").frame(TEXT, 2, index=3)
    assert a.data == b.data and a.params == b.params
    assert a.data != c.data


def test_formats_and_sizes_as_the_board_gives_them() -> None:
    for res, (w, h) in (("QVGA", (320, 240)), ("VGA", (640, 480))):
        g = CameraSim(1, resolution=res, fmt="gray").frame(TEXT, 1)
        assert (g.kind, g.width, g.height, len(g.data)) == (F.OBJ_FRAME_GRAY, w, h, w * h)
        assert g.payload()[:4] == struct.pack("<HH", w, h)
        j = CameraSim(1, resolution=res, fmt="jpeg").frame(TEXT, 1)
        assert j.kind == F.OBJ_FRAME_JPEG and j.payload() == j.data
        img = Image.open(io.BytesIO(j.data))
        assert img.format == "JPEG" and img.size == (w, h)


def test_levels_get_harder() -> None:
    for a, b in itertools.pairwise(LEVELS):
        assert a.blur[1] <= b.blur[1] and a.noise[1] <= b.noise[1]
        assert a.occlusion[1] <= b.occlusion[1] and a.jpeg_quality >= b.jpeg_quality


def test_perspective_coefficients_map_corners() -> None:
    src = [(0.0, 0.0), (100.0, 0.0), (100.0, 200.0), (0.0, 200.0)]
    dst = [(10.0, 12.0), (90.0, 5.0), (95.0, 180.0), (3.0, 170.0)]
    c = perspective_coeffs(dst, src)
    for (x, y), (u, v) in zip(dst, src, strict=True):
        d = c[6] * x + c[7] * y + 1
        assert abs((c[0] * x + c[1] * y + c[2]) / d - u) < 1e-6
        assert abs((c[3] * x + c[4] * y + c[5]) / d - v) < 1e-6


def test_frame_file_is_what_the_firmware_reads(tmp_path: Path) -> None:
    path = tmp_path / "camera.bin"
    ff = FrameFile(path)
    frame = CameraSim(1, resolution="QVGA", fmt="jpeg").frame(TEXT, 0)
    assert ff.publish(frame) == 1
    raw = path.read_bytes()
    assert raw[:2] == b"CF"
    kind, _, w, h, seq, n = struct.unpack_from("<BBHHII", raw, 2)
    assert (kind, w, h, seq, n) == (F.OBJ_FRAME_JPEG, 320, 240, 1, len(frame.data))
    assert raw[16:] == frame.data
    ff.clear()
    assert not path.exists()
