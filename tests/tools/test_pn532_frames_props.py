"""Property tests of the PN532 frame codec, the driver's frame reader and the
APDU paging (CPython, hypothesis), on the firmware's own modules."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))

from pn532 import apdu as A  # noqa: E402
from pn532 import frame  # noqa: E402
from pn532.chip import PN532  # noqa: E402
from pn532.errors import PN532Error, PN532FrameError  # noqa: E402
from pn532.transport import UartTransport  # noqa: E402

from comptoir_tools.simulators.phone import Phone  # noqa: E402
from comptoir_tools.simulators.pn532_sim import encode_frame  # noqa: E402

payloads = st.binary(min_size=1, max_size=264)
tfis = st.sampled_from([0xD4, 0xD5])


def encode(tfi: int, data: bytes) -> bytes:
    out = bytearray(len(data) + 12)
    n = frame.encode(out, tfi, data, len(data))
    return bytes(out[:n])


@given(tfis, payloads)
def test_round_trip(tfi: int, data: bytes) -> None:
    f = encode(tfi, data)
    assert frame.parse(f) == (frame.DATA_FRAME, bytes([tfi]) + data)
    assert f == encode_frame(tfi, data)  # the simulator's encoder agrees


@given(tfis, payloads, st.data())
def test_any_corruption_is_detected(tfi: int, data: bytes, draw: st.DataObject) -> None:
    f = bytearray(encode(tfi, data))
    i = draw.draw(st.integers(0, len(f) - 1), label="position")
    f[i] ^= draw.draw(st.integers(1, 255), label="flip")
    try:
        kind, body = frame.parse(bytes(f))
    except PN532FrameError:
        assert i > 0  # only the preamble byte may change unnoticed
        return
    # Undetected: only when the preamble changed, and then the frame is intact.
    assert i == 0 and (kind, body) == (frame.DATA_FRAME, bytes([tfi]) + data)


@given(tfis, payloads, st.integers(1, 8))
def test_truncation_is_detected(tfi: int, data: bytes, cut: int) -> None:
    f = encode(tfi, data)
    try:
        frame.parse(f[:-cut])
    except PN532FrameError:
        return
    raise AssertionError("a truncated frame decoded")


@given(st.binary(max_size=400))
def test_decoder_never_crashes(noise: bytes) -> None:
    with contextlib.suppress(PN532FrameError):
        frame.parse(noise)


class NoiseUart:
    """A UART whose chip answers a fixed stream of bytes."""

    def __init__(self, stream: bytes) -> None:
        self.rx = stream
        self.pos = 0

    def write(self, buf: bytes) -> int:
        return len(buf)

    def any(self) -> int:
        return len(self.rx) - self.pos

    def readinto(self, buf: memoryview, n: int = -1) -> int | None:
        k = min(n if n >= 0 else len(buf), len(self.rx) - self.pos)
        if k <= 0:
            return None
        buf[:k] = self.rx[self.pos : self.pos + k]
        self.pos += k
        return k


ACK = frame.ACK
VERSION = encode_frame(0xD5, b"\x03\x32\x01\x06\x07")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=80), st.booleans(), st.binary(max_size=20))
def test_driver_on_noise_returns_or_raises_named(noise: bytes, good: bool, tail: bytes) -> None:
    stream = noise + (ACK + VERSION if good else b"") + tail
    pn = PN532(UartTransport(NoiseUart(stream)), ack_timeout_ms=3)
    pn._asleep = False
    try:
        r = pn.command(0x02, b"", timeout_ms=3)
    except PN532Error:
        return
    # Whatever it returns was really sent, whole and valid, as a reply to 0x02.
    assert encode_frame(0xD5, b"\x03" + bytes(r)) in stream


class PhonePn:
    """pn532.exchange() straight into a simulated phone."""

    def __init__(self, phone: Phone) -> None:
        self.phone = phone

    def exchange(self, data: bytearray, n: int, out: bytearray, timeout_ms: int = 500) -> int:
        r = self.phone.process_apdu(bytes(data[:n]))
        assert len(r) <= 262  # what one InDataExchange carries
        out[: len(r)] = r
        return len(r)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000), st.integers(1, 240), st.binary(min_size=16, max_size=16))
def test_paging_reassembles_any_presentation(blob: bytes, chunk: int, challenge: bytes) -> None:
    phone = Phone(lambda c: blob, chunk=chunk)
    a = A.Apdu(PhonePn(phone))
    A.select_comptoir(a)
    out = bytearray(4096)
    n = A.read_presentation(a, challenge, out)
    assert bytes(out[:n]) == blob
    assert phone.challenges == [challenge]
