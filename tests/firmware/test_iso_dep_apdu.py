# The APDU layer and the Comptoir application's APDUs (docs/nfc.md).
from mpcheck import hexb, raises
from pn532 import apdu as A
from pn532 import errors
from pn532.chip import PN532
from pn532.transport import UartTransport
from test_pn532_fakes import ACK, ScriptUart, chip_frame, host_frame


class FakeCard:
    """pn532.exchange() at APDU level: answers from a list, records commands."""

    def __init__(self, answers):
        self.answers = [hexb(a) if isinstance(a, str) else a for a in answers]
        self.sent = []

    def exchange(self, data, n, out, timeout_ms=500):
        self.sent.append(bytes(data[:n]))
        r = self.answers.pop(0)
        out[: len(r)] = r
        return len(r)


def test_aid_and_constants():
    assert A.COMPTOIR_AID == hexb("F0 43 4F 4D 50 54 4F 49 52 01")
    assert A.COMPTOIR_AID[1:9] == b"COMPTOIR"
    assert A.CHUNK <= 250


def test_build_the_four_cases():
    a = A.Apdu(FakeCard([]))
    assert bytes(a._cmd[: a.build(0x00, 0xA4, 0x04, 0x00)]) == hexb("00 A4 04 00")
    assert bytes(a._cmd[: a.build(0x00, 0xC0, 0, 0, None, 0xF0)]) == hexb("00 C0 00 00 F0")
    assert bytes(a._cmd[: a.build(0x00, 0xC0, 0, 0, None, 256)]) == hexb("00 C0 00 00 00")
    assert bytes(a._cmd[: a.build(0x80, 0x50, 0, 0, b"\x01\x02")]) == hexb("80 50 00 00 02 01 02")
    n = a.build(0x80, 0x50, 0, 0, b"\x01\x02", 240)
    assert bytes(a._cmd[:n]) == hexb("80 50 00 00 02 01 02 F0")
    raises(ValueError, a.build, 0, 0, 0, 0, bytes(256))
    raises(ValueError, a.build, 0, 0, 0, 0, None, 257)
    n = a.build(0, 0xD6, 0, 0, bytes(255), 256)
    assert n == 261 and a._cmd[4] == 255 and a._cmd[260] == 0


def test_select_comptoir_on_the_wire():
    # The whole SELECT as InDataExchange frame, byte for byte.
    sel = "00 A4 04 00 0A F0 43 4F 4D 50 54 4F 49 52 01 00"
    u = ScriptUart([(host_frame("40 01 " + sel), ACK + chip_frame("41 00 01 90 00"))])
    pn = PN532(UartTransport(u), ack_timeout_ms=30)
    pn._asleep = False
    assert A.select_comptoir(A.Apdu(pn)) == 1
    assert u.done()


def test_select_unknown_app_is_app_not_found():
    a = A.Apdu(FakeCard(["6A 82"]))
    e = raises(errors.AppNotFound, A.select_comptoir, a)
    assert e.sw == 0x6A82 and e.name == "APPLICATION_NOT_FOUND"


def test_select_wrong_version():
    a = A.Apdu(FakeCard(["02 90 00"]))
    raises(errors.StatusWordError, A.select_comptoir, a)


def test_presentation_paged_with_61xx_and_get_response():
    blob = bytes([i * 7 & 0xFF for i in range(600)])
    card = FakeCard([
        blob[:240] + hexb("61 00"),  # 360 left: 00 = 256 or more
        blob[240:480] + hexb("61 78"),  # 120 left
        blob[480:] + hexb("90 00"),
    ])
    a = A.Apdu(card)
    out = bytearray(1000)
    ch = bytes(range(16))
    n = A.read_presentation(a, ch, out)
    assert n == 600 and bytes(out[:n]) == blob
    assert card.sent[0] == hexb("80 50 00 00 10") + ch + hexb("F0")
    assert card.sent[1] == hexb("00 C0 00 00 F0")
    assert card.sent[2] == hexb("00 C0 00 00 78")


def test_wrong_le_6cxx_is_retried_with_the_cards_le():
    card = FakeCard(["6C 05", "01 02 03 04 05 90 00"])
    a = A.Apdu(card)
    out = bytearray(16)
    assert a.command_paged(0x80, 0xCA, 0, 0, None, out) == 5
    assert card.sent[1] == hexb("80 CA 00 00 05")


def test_every_error_status_word_is_named():
    for sw in (0x6700, 0x6982, 0x6985, 0x6A82, 0x6A86, 0x6D00, 0x6E00, 0x6F00, 0x6400,
               0x6581, 0x6A80, 0x6999, 0x6B00, 0x6283, 0x9001):
        card = FakeCard([bytes([sw >> 8, sw & 0xFF])])
        e = raises(errors.StatusWordError, A.Apdu(card).command, 0x80, 0x50, 0, 0)
        assert e.sw == sw
        assert e.name and ("%04X" % sw in str(e))
        assert not e.name.startswith("SW_") or sw == 0x9001
    assert isinstance(errors.sw_error(0x6982), errors.AppLocked)
    assert errors.sw_name(0x6999) == "COMMAND_NOT_ALLOWED_6999"


def test_error_in_the_middle_of_paging():
    card = FakeCard([bytes(240) + hexb("61 00"), "69 85"])
    e = raises(errors.StatusWordError, A.read_presentation, A.Apdu(card), bytes(16),
               bytearray(1000))
    assert e.name == "CONDITIONS_NOT_SATISFIED"


def test_presentation_longer_than_the_buffer():
    card = FakeCard([bytes(240) + hexb("61 00"), bytes(240) + hexb("61 00")])
    raises(errors.ResponseTooLong, A.read_presentation, A.Apdu(card), bytes(16), bytearray(300))


def test_paging_without_progress_stops():
    card = FakeCard(["61 10", "61 10", "61 10", "61 10"])
    raises(errors.ResponseTooLong, A.read_presentation, A.Apdu(card), bytes(16), bytearray(300))


def test_response_without_status_word():
    raises(errors.ResponseTooShort, A.Apdu(FakeCard(["90"])).transceive, 0, 0xA4, 4, 0)


def test_challenge_must_be_16_bytes():
    raises(ValueError, A.read_presentation, A.Apdu(FakeCard([])), bytes(15), bytearray(10))
