# The PN532 driver, byte for byte, over a scripted UART (HSU).
from mpcheck import hexb, raises
from pn532 import errors
from pn532.chip import PN532
from pn532.transport import WAKEUP, UartTransport
from test_pn532_fakes import ACK, ERR, NACK, ScriptUart, chip_frame, host_frame

WAKE = (WAKEUP, b"")


def make(script, **kw):
    u = ScriptUart([WAKE] + list(script))
    kw.setdefault("ack_timeout_ms", 30)
    return u, PN532(UartTransport(u), **kw)


def test_wakeup_bytes():
    assert WAKEUP[:2] == hexb("55 55") and WAKEUP[2:] == bytes(14)


def test_get_firmware_version():
    u, pn = make([(hexb("00 00 FF 02 FE D4 02 2A 00"),
                   ACK + hexb("00 00 FF 06 FA D5 03 32 01 06 07 E8 00"))])
    assert pn.firmware_version() == (0x32, 0x01, 0x06, 0x07)
    assert u.done() and u.any() == 0


def test_init_sequence():
    u, pn = make([
        (host_frame("14 01 14 01"), ACK + chip_frame("15")),
        (host_frame("02"), ACK + chip_frame("03 32 01 06 07")),
        (host_frame("12 14"), ACK + chip_frame("13")),
        (host_frame("32 05 FF 01 02"), ACK + chip_frame("33")),  # finite retries
        (host_frame("32 02 00 0B 0A"), ACK + chip_frame("33")),
    ])
    pn.init()
    assert u.done()
    assert pn.version == (1, 6, 7)
    assert u.writes[0] == WAKEUP  # wake-up first: the chip boots in LowVbat


def test_init_refuses_another_chip():
    u, pn = make([
        (host_frame("14 01 14 01"), ACK + chip_frame("15")),
        (host_frame("02"), ACK + chip_frame("03 33 01 06 07")),
    ])
    raises(errors.PN532NotFound, pn.init)


def test_sam_set_parameters_rf_configuration():
    u, pn = make([
        (host_frame("14 01 00 00"), ACK + chip_frame("15")),
        (host_frame("12 14"), ACK + chip_frame("13")),
        (host_frame("32 01 01"), ACK + chip_frame("33")),
        (host_frame("32 01 00"), ACK + chip_frame("33")),
        (host_frame("32 05 FF 01 00"), ACK + chip_frame("33")),
        (host_frame("32 04 03"), ACK + chip_frame("33")),
    ])
    pn.sam_configuration(0x01, 0x00, 0x00)
    pn.set_parameters(0x14)
    pn.rf_field(True)
    pn.rf_field(False)
    pn.set_max_retries(0xFF, 0x01, 0x00)
    pn.rf_configuration(0x04, b"\x03")
    assert u.done()


def test_list_passive_target_android_hce():
    # nfcpy's log of an Android phone in HCE on a PN532 (pn532.md).
    u, pn = make([(hexb("00 00 FF 04 FC D4 4A 01 00 E1 00"),
                   ACK + chip_frame("4B 01 01 00 04 20 04 08 F6 A0 C9 05 78 80 70 02"))])
    t = pn.list_passive_target()
    assert t is pn.target
    assert t.tg == 1 and t.sens_res == 0x0004 and t.sel_res == 0x20
    assert bytes(t.uid[: t.uid_len]) == hexb("08 F6 A0 C9")
    assert bytes(t.ats[: t.ats_len]) == hexb("05 78 80 70 02")
    assert t.iso_dep


def test_sak_bit_not_equality():
    for sak, iso in ((0x60, True), (0x20, True), (0x28, True), (0x08, False), (0x00, False)):
        ats = "05 75 80 70 02" if iso else ""
        u, pn = make([(host_frame("4A 01 00"),
                       ACK + chip_frame("4B 01 01 00 04 %02X 04 08 01 02 03 %s" % (sak, ats)))])
        t = pn.list_passive_target()
        assert t.iso_dep == iso, sak
        assert t.ats_len == (5 if iso else 0)


def test_list_passive_target_seven_byte_uid():
    u, pn = make([(host_frame("4A 01 00"),
                   ACK + chip_frame("4B 01 01 00 44 00 07 04 11 22 33 44 55 66"))])
    t = pn.list_passive_target()
    assert t.uid_len == 7 and bytes(t.uid[:7]) == hexb("04 11 22 33 44 55 66")
    assert not t.iso_dep and t.ats_len == 0


def test_list_passive_target_none():
    u, pn = make([(host_frame("4A 01 00"), ACK + chip_frame("4B 00"))])
    assert pn.list_passive_target() is None
    assert pn.target.tg == 0


def test_list_passive_target_malformed():
    for reply in (
        "4B 01 01 00 04",  # cut short
        "4B 01 01 00 04 20 0B 08",  # UID length 11
        "4B 01 01 00 04 20 04 08 01 02 03 09 78",  # ATS longer than the reply
    ):
        u, pn = make([(host_frame("4A 01 00"), ACK + chip_frame(reply))])
        raises(errors.PN532BadReply, pn.list_passive_target)


def test_in_data_exchange_select():
    u, pn = make([(host_frame("40 01 00 A4 04 00 07 D2 76 00 00 85 01 01 00"),
                   ACK + chip_frame("41 00 90 00"))])
    out = bytearray(64)
    apdu = hexb("00 A4 04 00 07 D2 76 00 00 85 01 01 00")
    n = pn.exchange(apdu, len(apdu), out)
    assert bytes(out[:n]) == hexb("90 00")


def test_in_data_exchange_every_status_is_a_named_error():
    codes = [int(e[:2], 16) for e in errors.STATUS_TABLE.split()]
    assert len(codes) == 26 and errors.status_name(0x13) == "RF_FORMAT"
    for code in codes:
        name = errors.status_name(code)
        assert name and not name.startswith("STATUS_")
        u, pn = make([(host_frame("40 01 00 B0 00 00 00"),
                       ACK + chip_frame(bytes([0x41, code])))])
        e = raises(errors.PN532StatusError, pn.exchange, hexb("00 B0 00 00 00"), 5, bytearray(8))
        assert e.code == code and e.name == name
        if code == 0x01:
            assert isinstance(e, errors.RfTimeout)
        elif code in (0x02, 0x03, 0x13):
            assert isinstance(e, errors.RfTransmissionError)
        elif code in (0x27, 0x29, 0x2B):
            assert isinstance(e, errors.TargetGone)
        elif code in (0x0D, 0x10, 0x2D):
            assert isinstance(e, errors.ChipStatusError)
    e = errors.status_error(0x3E)
    assert e.name == "STATUS_3E"


def test_status_nad_bit_is_not_an_error_but_mi_is_followed():
    big = bytes([i & 0xFF for i in range(262)])
    rest = hexb("AA BB 90 00")
    u, pn = make([
        (host_frame("40 01 80 CA 00 00 00"), ACK + chip_frame(b"\x41\x40" + big)),  # extended
        (host_frame("40 01"), ACK + chip_frame(b"\x41\x00" + rest)),
    ])
    out = bytearray(300)
    apdu = hexb("80 CA 00 00 00")
    n = pn.exchange(apdu, 5, out)
    assert n == 266 and bytes(out[:262]) == big and bytes(out[262:266]) == rest
    assert u.done()


def test_exchange_output_overflow_is_named():
    u, pn = make([(host_frame("40 01 00"), ACK + chip_frame("41 00 01 02 03 04 90 00"))])
    raises(errors.ResponseTooLong, pn.exchange, b"\x00", 1, bytearray(4))


def test_in_release():
    u, pn = make([(hexb("00 00 FF 03 FD D4 52 00 DA 00"), ACK + chip_frame("53 00"))])
    pn.release()
    u, pn = make([(host_frame("52 00"), ACK + chip_frame("53 27"))])
    e = raises(errors.TargetGone, pn.release)
    assert e.name == "COMMAND_NOT_ACCEPTABLE"


def test_bad_checksum_reply_is_re_requested_with_nack():
    good = chip_frame("03 32 01 06 07")
    bad = bytearray(good)
    bad[-2] ^= 0xFF  # DCS
    u, pn = make([(host_frame("02"), ACK + bytes(bad)), (NACK, good)])
    assert pn.firmware_version() == (0x32, 1, 6, 7)
    assert pn.nacks_sent == 1


def test_bad_length_checksum_is_re_requested():
    good = chip_frame("03 32 01 06 07")
    bad = bytearray(good)
    bad[4] ^= 0x10  # LCS
    u, pn = make([(host_frame("02"), ACK + bytes(bad)), (NACK, good)])
    assert pn.firmware_version()[0] == 0x32


def test_reply_corrupt_every_time_gives_frame_error():
    good = chip_frame("03 32 01 06 07")
    bad = good[:-2] + bytes([good[-2] ^ 1, 0])
    u, pn = make([(host_frame("02"), ACK + bad), (NACK, bad), (NACK, bad), (ACK, b"")])
    raises(errors.PN532FrameError, pn.firmware_version)
    assert u.writes[-1] == ACK  # the command is aborted


def test_no_ack_is_resent_once_then_named():
    cmd = host_frame("02")
    u, pn = make([(cmd, b""), (ACK, b""), (cmd, b""), (ACK, b"")])
    e = raises(errors.PN532NoAck, pn.firmware_version)
    assert isinstance(e, errors.PN532Timeout)
    assert u.done() and pn.resends == 1


def test_lost_ack_then_resend_works():
    cmd = host_frame("02")
    u, pn = make([(cmd, b""), (ACK, b""), (cmd, ACK + chip_frame("03 32 01 06 07"))])
    assert pn.firmware_version()[0] == 0x32


def test_nack_instead_of_ack_resends():
    cmd = host_frame("02")
    u, pn = make([(cmd, NACK), (cmd, ACK + chip_frame("03 32 01 06 07"))])
    assert pn.firmware_version()[0] == 0x32
    assert pn.resends == 1


def test_reply_timeout_aborts_with_ack():
    u, pn = make([(host_frame("4A 01 00"), ACK), (ACK, b"")])
    e = raises(errors.PN532Timeout, pn.list_passive_target, 40)
    assert not isinstance(e, errors.PN532NoAck)
    assert u.writes[-1] == ACK and pn.aborts == 1


def test_error_frame_is_syntax_error():
    u, pn = make([(host_frame("02"), ACK + ERR)])
    raises(errors.PN532SyntaxError, pn.firmware_version)


def test_noise_before_frames_is_skipped():
    u, pn = make([(host_frame("02"),
                   hexb("FF 55 13") + ACK + hexb("01 FF 00") + chip_frame("03 32 01 06 07"))])
    assert pn.firmware_version()[0] == 0x32


def test_reply_without_ack_is_accepted():
    u, pn = make([(host_frame("02"), chip_frame("03 32 01 06 07"))])
    assert pn.firmware_version()[0] == 0x32


def test_stale_reply_is_skipped():
    u, pn = make([(host_frame("02"), ACK + chip_frame("4B 00") + chip_frame("03 32 01 06 07"))])
    assert pn.firmware_version()[0] == 0x32


def test_reads_header_then_exactly_len_plus_one():
    reply = chip_frame("03 32 01 06 07")
    u, pn = make([(host_frame("02"), ACK + reply + b"NEXT")])
    pn.firmware_version()
    assert u.pending() == b"NEXT"  # nothing of what follows the frame was read
    # ACK: 6 bytes; the reply: its 6-byte header, then LEN + 1 = 7 bytes.
    assert u.reads == [6, 6, 7]


def test_extended_reply_is_read_exactly():
    data = bytes([0x41, 0x00]) + bytes(range(250)) + bytes(range(10)) + b"\x90\x00"
    u, pn = make([(None, ACK + chip_frame(data) + b"Z")])
    out = bytearray(300)
    n = pn.exchange(b"\x00\xb0\x00\x00\x00", 5, out)
    assert n == 262 and u.pending() == b"Z"


def test_stale_input_is_drained_before_a_command():
    u, pn = make([(host_frame("02"), ACK + chip_frame("03 32 01 06 07"))])
    u.feed(chip_frame("4B 00"))  # a late reply to an aborted command
    assert pn.firmware_version()[0] == 0x32


def test_late_answer_of_an_aborted_exchange_is_not_the_next_ones():
    # An exchange times out and is aborted (host ACK); the chip's answer to it was already
    # on its way and lands after the next command's drain, before that command's ACK. It has
    # the same code (D5 41): taken as the next exchange's answer it splices a page of one
    # phone answer into another (seen as a malformed presentation in the replug test).
    old_page = bytes(range(20)) + hexb("61 10")
    new_page = bytes(range(100, 116)) + hexb("90 00")
    u, pn = make([
        (None, ACK),  # InDataExchange 1: ACK, then no answer in time
        (ACK, b""),  # the driver's abort
        (None, chip_frame(b"\x41\x00" + old_page) + ACK + chip_frame(b"\x41\x00" + new_page)),
    ])
    pn.target.tg = 1
    out = bytearray(64)
    raises(errors.PN532Timeout, pn.exchange, hexb("00 C0 00 00 14"), 5, out, 40)
    n = pn.exchange(hexb("00 C0 00 00 10"), 5, out, 200)
    assert bytes(out[:n]) == new_page, bytes(out[:n]).hex()


def test_power_down_then_wakeup_before_next_command():
    u, pn = make([
        (host_frame("16 B0"), ACK + chip_frame("17 00")),
        WAKE,
        (host_frame("02"), ACK + chip_frame("03 32 01 06 07")),
    ])
    pn.power_down()
    assert pn.firmware_version()[0] == 0x32
    assert u.done()


def test_exchange_refuses_more_than_262_bytes():
    u, pn = make([])
    raises(ValueError, pn.exchange, bytes(263), 263, bytearray(8))
