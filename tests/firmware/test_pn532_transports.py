# SPI and I2C transports at byte level, through simulated buses with a PN532
# behind them; the driver above them is the same as for HSU.
from mpcheck import hexb, raises
from pn532 import errors
from pn532.chip import PN532
from pn532.transport import I2cTransport, SpiTransport
from test_pn532_fakes import ACK, FakeI2cChip, FakePin, FakeSpiChip, chip_frame, host_frame


def _spi(script, bus_lsb):
    cs = FakePin()
    bus = FakeSpiChip(cs, script, bus_lsb=bus_lsb)
    pn = PN532(SpiTransport(bus, cs, lsb_first=bus_lsb), ack_timeout_ms=30)
    return cs, bus, pn


def test_spi_firmware_version_bit_reversed_in_software():
    reply = chip_frame("03 32 01 06 07")
    cs, bus, pn = _spi([(host_frame("02"), [ACK, reply])], bus_lsb=False)
    pn._asleep = False
    assert pn.firmware_version() == (0x32, 1, 6, 7)
    assert bus.writes == [host_frame("02")]  # decoded LSB first by the chip
    assert cs.v == 1


def test_spi_with_an_lsb_first_bus():
    cs, bus, pn = _spi([(host_frame("4A 01 00"), [ACK, chip_frame("4B 00")])], bus_lsb=True)
    pn._asleep = False
    assert pn.list_passive_target() is None


def test_spi_lead_bytes_on_the_wire():
    # What the bus clocks out, MSB-first view: 01 reversed = 80, 02 = 40, 03 = C0.
    sent = []

    class Rec:
        def write(self, b):
            sent.append(bytes(b))

        def readinto(self, buf, write=0):
            for i in range(len(buf)):
                buf[i] = 0x80  # status 01 reversed: ready

    cs = FakePin()
    t = SpiTransport(Rec(), cs, lsb_first=False)
    t.write(hexb("00 00 FF"))
    assert sent[-1] == hexb("80 00 00 FF")
    assert t.ready()
    assert sent[-1] == hexb("40")
    t.begin_read(6)
    assert sent[-1] == hexb("C0") and cs.v == 0
    t.end_read()
    assert cs.v == 1


def test_spi_init_and_exchange():
    script = [
        (host_frame("14 01 14 01"), [ACK, chip_frame("15")]),
        (host_frame("02"), [ACK, chip_frame("03 32 01 06 07")]),
        (host_frame("12 14"), [ACK, chip_frame("13")]),
        (host_frame("32 05 FF 01 02"), [ACK, chip_frame("33")]),
        (host_frame("32 02 00 0B 0A"), [ACK, chip_frame("33")]),
        (host_frame("40 01 00 A4 04 00 00"), [ACK, chip_frame("41 00 6A 82")]),
    ]
    cs, bus, pn = _spi(script, bus_lsb=False)
    pn.init()
    out = bytearray(16)
    n = pn.exchange(hexb("00 A4 04 00 00"), 5, out)
    assert bytes(out[:n]) == hexb("6A 82")


def test_spi_no_ack_is_named():
    cmd = host_frame("02")
    cs, bus, pn = _spi([(cmd, []), (ACK, []), (cmd, []), (ACK, [])], bus_lsb=True)
    pn._asleep = False
    raises(errors.PN532NoAck, pn.firmware_version)


def test_i2c_firmware_version_and_status_byte():
    bus = FakeI2cChip([(host_frame("02"), [ACK, chip_frame("03 32 01 06 07")])])
    pn = PN532(I2cTransport(bus), ack_timeout_ms=30)
    pn._asleep = False
    assert pn.firmware_version() == (0x32, 1, 6, 7)
    assert bus.writes == [host_frame("02")]
    # status polls (1 byte), the ACK read (status + 6), the reply read.
    assert 7 in bus.reads and max(bus.reads) > 7


def test_i2c_exchange_with_mi_and_extended_frame():
    big = bytes([i & 0xFF for i in range(262)])
    bus = FakeI2cChip([
        (host_frame("40 01 00 C0 00 00 00"), [ACK, chip_frame(b"\x41\x40" + big)]),
        (host_frame("40 01"), [ACK, chip_frame("41 00 90 00")]),
    ])
    pn = PN532(I2cTransport(bus), ack_timeout_ms=30)
    pn._asleep = False
    out = bytearray(300)
    n = pn.exchange(hexb("00 C0 00 00 00"), 5, out)
    assert n == 264 and bytes(out[:262]) == big


def test_i2c_wakeup_tolerates_a_nak():
    class Nak:
        def writeto(self, addr, buf):
            raise OSError(19)

    I2cTransport(Nak()).wakeup()  # must not raise
