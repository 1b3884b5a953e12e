# The PN532 frame codec against frames printed in the NXP manual / pn532.md.
from mpcheck import hexb, raises
from pn532 import frame
from pn532.errors import PN532FrameError
from test_pn532_fakes import chip_frame, host_frame


def enc(hexbody, tfi=0xD4):
    body = hexb(hexbody)
    out = bytearray(len(body) + 12)
    n = frame.encode(out, tfi, body, len(body))
    return bytes(out[:n])


def test_encode_host_commands_from_the_manual():
    assert enc("02") == hexb("00 00 FF 02 FE D4 02 2A 00")  # GetFirmwareVersion
    assert enc("4A 01 00") == hexb("00 00 FF 04 FC D4 4A 01 00 E1 00")  # InListPassiveTarget
    assert enc("14 01 14 01") == hexb("00 00 FF 05 FB D4 14 01 14 01 02 00")  # SAM (Adafruit)


def test_control_frames_are_the_manuals():
    assert frame.ACK == hexb("00 00 FF 00 FF 00")
    assert frame.NACK == hexb("00 00 FF FF 00 00")
    assert frame.ERROR_FRAME == hexb("00 00 FF 01 FF 7F 81 00")


def test_parse_reply_from_the_manual():
    kind, body = frame.parse(hexb("00 00 FF 06 FA D5 03 32 01 06 07 E8 00"))
    assert kind == frame.DATA_FRAME
    assert body == hexb("D5 03 32 01 06 07")


def test_parse_control_frames():
    assert frame.parse(frame.ACK)[0] == frame.ACK_FRAME
    assert frame.parse(frame.NACK)[0] == frame.NACK_FRAME
    assert frame.parse(frame.ERROR_FRAME)[0] == frame.ERROR


def test_extended_frame_round_trip():
    data = bytes([i & 0xFF for i in range(300)])
    body = b"\x40" + data[:263]  # 264 bytes after the TFI: LEN 265
    out = bytearray(300)
    n = frame.encode(out, 0xD4, body, len(body))
    assert bytes(out[:8]) == hexb("00 00 FF FF FF 01 09 F6")
    assert bytes(out[:n]) == host_frame(body)
    kind, got = frame.parse(bytes(out[:n]))
    assert kind == frame.DATA_FRAME and got == b"\xd4" + body


def test_normal_frame_up_to_254_then_extended():
    for size in (252, 253):  # LEN 253, 254: normal frames
        out = bytearray(size + 12)
        n = frame.encode(out, 0xD5, bytes(size), size)
        assert out[3] == size + 1 and n == size + 8
    out = bytearray(270)
    n = frame.encode(out, 0xD5, bytes(254), 254)  # LEN 255: extended
    assert out[3] == 0xFF and out[4] == 0xFF and out[5] == 0 and out[6] == 255
    assert n == 254 + 11
    # A normal frame with LEN 255 (LCS 01) is valid too, and decodes.
    body = b"\xd5" + bytes(254)
    f = bytes([0, 0, 0xFF, 0xFF, 0x01]) + body + bytes([(-sum(body)) & 0xFF, 0])
    assert frame.parse(f) == (frame.DATA_FRAME, body)


def test_encode_refuses_empty_and_oversize():
    out = bytearray(300)
    raises(ValueError, frame.encode, out, 0xD4, b"", 0)
    raises(ValueError, frame.encode, out, 0xD4, bytes(265), 265)


def test_corrupt_frames_are_detected():
    good = chip_frame("4B 00")
    assert frame.parse(good) == (frame.DATA_FRAME, hexb("D5 4B 00"))
    for i in range(3, len(good)):  # every byte from LEN on
        bad = bytearray(good)
        bad[i] ^= 0x01
        raises(PN532FrameError, frame.parse, bytes(bad))


def test_truncated_and_missing_start_code():
    good = chip_frame("03 32 01 06 07")
    raises(PN532FrameError, frame.parse, good[:-1])
    raises(PN532FrameError, frame.parse, hexb("55 55 01 02 03"))
    raises(PN532FrameError, frame.parse, hexb("00 00 FF 00 00 00"))  # LEN 0


def test_leading_noise_is_skipped():
    kind, body = frame.parse(hexb("13 37 FF") + chip_frame("15"))
    assert body == hexb("D5 15")


def test_needed_reports_sizes_for_streaming():
    f = chip_frame("03 32 01 06 07")[1:]  # from the start code
    assert frame.needed(f, 2) == 4
    assert frame.needed(f, 4) == len(f)
    assert frame.needed(frame.ACK[1:], 4) == 5
    ext = host_frame(bytes(260))[1:]
    assert frame.needed(ext, 4) == 7
    assert frame.needed(ext, 7) == len(ext)
