# Test doubles for the PN532 driver, shared by the test_pn532_* modules (runs
# under CPython and MicroPython): a UART that plays a scripted PN532, frames
# built by an encoder written independently of pn532.frame, and byte-level SPI
# and I2C buses with a chip behind them. The test_ functions check the doubles.
from mpcheck import hexb


def chip_frame(hexdata, tfi=0xD5):
    """A normal/extended frame for TFI + data, computed here (not by pn532.frame)."""
    data = hexb(hexdata) if isinstance(hexdata, str) else bytes(hexdata)
    body = bytes([tfi]) + data
    n = len(body)
    if n < 255:
        head = bytes([0, 0, 0xFF, n, (256 - n) % 256])
    else:
        hi = n >> 8
        lo = n & 0xFF
        head = bytes([0, 0, 0xFF, 0xFF, 0xFF, hi, lo, (256 - (hi + lo) % 256) % 256])
    return head + body + bytes([(256 - sum(body) % 256) % 256, 0])


def host_frame(hexdata):
    return chip_frame(hexdata, 0xD4)


ACK = hexb("00 00 FF 00 FF 00")
NACK = hexb("00 00 FF FF 00 00")
ERR = hexb("00 00 FF 01 FF 7F 81 00")


class ScriptUart:
    """machine.UART-like. `script` is a list of (expected write, answer):
    every write must equal the next expected bytes (None: anything), and its
    answer becomes readable. Records all writes."""

    def __init__(self, script=()):
        self.script = list(script)
        self.writes = []
        self.rx = bytearray()
        self.pos = 0
        self.reads = []  # n of every read that returned bytes

    def feed(self, data):
        self.rx += data

    def write(self, buf):
        b = bytes(buf)
        self.writes.append(b)
        if not self.script:
            raise AssertionError("unexpected write %s" % b.hex())
        expected, answer = self.script.pop(0)
        if expected is not None and b != expected:
            raise AssertionError("wrote %s, expected %s" % (b.hex(), expected.hex()))
        self.rx += answer
        return len(b)

    def pending(self):
        return bytes(self.rx[self.pos :])

    def any(self):
        return len(self.rx) - self.pos

    def readinto(self, buf, n=-1):
        if n is None or n < 0:
            n = len(buf)
        k = min(n, len(self.rx) - self.pos)
        if k <= 0:
            return None
        self.reads.append(n)
        for i in range(k):
            buf[i] = self.rx[self.pos + i]
        self.pos += k
        return k

    def done(self):
        return not self.script


def _rev(v):
    r = 0
    for _ in range(8):
        r = (r << 1) | (v & 1)
        v >>= 1
    return r


_REV = bytes([_rev(i) for i in range(256)])


class FakePin:
    def __init__(self):
        self.v = 1
        self.lows = 0

    def value(self, v=None):
        if v is None:
            return self.v
        if self.v and not v:
            self.lows += 1
        self.v = v


class FakeSpiChip:
    """An SPI bus (MSB first as the hardware clocks it; bus_lsb=True models a
    bus configured firstbit=LSB) with a PN532 behind it that answers a script:
    each data write (lead 01) must match, then its answer frames are served,
    one at a time, by status (02) and data reads (03)."""

    def __init__(self, cs, script, bus_lsb=False):
        self.cs = cs
        self.script = list(script)
        self.bus_lsb = bus_lsb
        self.out = []  # frames the chip will send (ACK, reply, ...)
        self.cur = b""  # frame being read
        self.pos = 0
        self.mode = None
        self.writes = []  # (lead, payload) as the chip decoded them
        self.cs_at = 0

    def _chip(self, v):  # a byte on the wire, as the PN532 (LSB first) reads it
        return v if self.bus_lsb else _REV[v]

    def _bus(self, v):
        return v if self.bus_lsb else _REV[v]

    def write(self, buf):
        assert self.cs.v == 0, "SPI write with CS high"
        b = bytes(self._chip(x) for x in bytes(buf))
        if self.cs.lows != self.cs_at:  # a new transaction: the lead byte
            self.cs_at = self.cs.lows
            self.mode = b[0]
            b = b[1:]
            if self.mode == 0x03 and not self.cur:
                self.cur = self.out.pop(0) if self.out else b""
                self.pos = 0
        if self.mode == 0x01 and b:
            self.writes.append(b)
            expected, answers = self.script.pop(0)
            if expected is not None and b != expected:
                raise AssertionError("wrote %s, expected %s" % (b.hex(), expected.hex()))
            self.out.extend(answers)

    def readinto(self, buf, write=0x00):
        assert self.cs.v == 0, "SPI read with CS high"
        for i in range(len(buf)):
            if self.mode == 0x02:
                v = 0x01 if (self.out or self.cur) else 0x00
            elif self.mode == 0x03:
                if self.pos < len(self.cur):
                    v = self.cur[self.pos]
                    self.pos += 1
                    if self.pos == len(self.cur):
                        self.cur = b""
                else:
                    v = 0x00
            else:
                v = 0x00
            buf[i] = self._bus(v)


class FakeI2cChip:
    """An I2C bus with a PN532 at 0x24: reads return a status byte then the
    pending frame (padded with zeros); writes must match the script."""

    def __init__(self, script, addr=0x24):
        self.script = list(script)
        self.addr = addr
        self.out = []
        self.writes = []
        self.reads = []  # sizes of read transactions

    def writeto(self, addr, buf):
        assert addr == self.addr
        b = bytes(buf)
        if b == b"\x00":
            return  # wake-up
        self.writes.append(b)
        expected, answers = self.script.pop(0)
        if expected is not None and b != expected:
            raise AssertionError("wrote %s, expected %s" % (b.hex(), expected.hex()))
        self.out.extend(answers)

    def readfrom_into(self, addr, buf):
        assert addr == self.addr
        n = len(buf)
        self.reads.append(n)
        if not self.out:
            for i in range(n):
                buf[i] = 0
            return
        buf[0] = 0x01
        if n == 1:
            return
        f = self.out.pop(0)
        for i in range(1, n):
            buf[i] = f[i - 1] if i - 1 < len(f) else 0


def test_chip_frame_matches_the_manual():
    assert chip_frame("03 32 01 06 07") == hexb("00 00 FF 06 FA D5 03 32 01 06 07 E8 00")
    assert host_frame("02") == hexb("00 00 FF 02 FE D4 02 2A 00")
    assert host_frame("4A 01 00") == hexb("00 00 FF 04 FC D4 4A 01 00 E1 00")


def test_script_uart_checks_writes_and_serves_answers():
    u = ScriptUart([(b"ab", b"xyz")])
    u.write(b"ab")
    buf = bytearray(2)
    assert u.readinto(buf, 2) == 2 and bytes(buf) == b"xy"
    assert u.any() == 1
    assert u.done()
