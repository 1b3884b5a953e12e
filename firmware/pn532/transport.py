# The three host interfaces of the PN532 behind one small interface, so the
# driver (pn532.chip) is written once:
#
#   wakeup()                 bring the chip out of power-down / LowVbat
#   write(mv)                send one whole frame
#   ready() -> bool          a frame (ACK or reply) is waiting to be read
#   begin_read(hint)         start reading one frame (hint: its maximum size)
#   read_into(mv, n) -> k    up to n bytes of it into mv (0: nothing yet)
#   end_read()               the frame is read (or abandoned)
#   drain(scratch) -> k      drop bytes that are waiting (stale or corrupt)
#
# HSU: a machine.UART-like object. SPI: a machine.SPI-like bus (mode 0) and a
# chip-select pin; the PN532 wants LSB first, done by the bus (firstbit=LSB) or
# here in software. I2C: a machine.I2C-like bus, address 0x24, every read starts
# with a status byte.
from comptoir_link.compat import const

try:
    from time import sleep_ms
except ImportError:  # CPython
    from pn532.cpython_sleep import sleep_ms  # type: ignore


# HSU wake-up: 0x55 wakes the serial interface, the zeros give the oscillator
# time to start before the first real frame (libnfc, Adafruit: 55 55 00...).
WAKEUP = b"\x55\x55" + b"\x00" * 14

SPI_WRITE = const(0x01)
SPI_STATUS = const(0x02)
SPI_READ = const(0x03)
I2C_ADDRESS = const(0x24)
_DRAIN_MAX = const(32)  # at most 32 reads when dropping stale input


class UartTransport:
    """HSU: 115200 8N1 by default. Reads never block (None = nothing waiting)."""

    name = "hsu"

    def __init__(self, uart):
        self._u = uart

    def wakeup(self):
        self._u.write(WAKEUP)

    def write(self, mv):
        self._u.write(mv)

    def ready(self):
        return bool(self._u.any())

    def begin_read(self, hint):
        pass

    def read_into(self, mv, n):
        k = self._u.readinto(mv, n)
        return k or 0

    def end_read(self):
        pass

    def drain(self, scratch):
        total = 0
        for _ in range(_DRAIN_MAX):
            if not self._u.any():
                break
            k = self._u.readinto(scratch, len(scratch))
            if not k:
                break
            total += k
        return total


_REV = None


def _reverse_table():
    global _REV
    if _REV is None:
        t = bytearray(256)
        for i in range(256):
            r = 0
            v = i
            for _ in range(8):
                r = (r << 1) | (v & 1)
                v >>= 1
            t[i] = r
        _REV = bytes(t)
    return _REV


class SpiTransport:
    """SPI mode 0, LSB first. Lead byte 01 = data write, 02 = status read
    (bit 0 set: a frame is ready), 03 = data read. One frame is read in one
    chip-select window, header first and then exactly the rest."""

    name = "spi"

    def __init__(self, spi, cs, lsb_first=True, frame_max=276):
        self._spi = spi
        self._cs = cs
        self._rev = None if lsb_first else _reverse_table()
        self._out = bytearray(frame_max + 1)
        self._one = bytearray(1)
        self._lead = bytearray(1)
        cs.value(1)

    def _b(self, v):
        return self._rev[v] if self._rev else v

    def wakeup(self):
        # Chip select low wakes the SPI interface; give the oscillator 2 ms.
        self._cs.value(0)
        sleep_ms(2)
        self._cs.value(1)
        sleep_ms(1)

    def write(self, mv):
        n = len(mv)
        out = self._out
        out[0] = self._b(SPI_WRITE)
        rev = self._rev
        for i in range(n):
            out[i + 1] = rev[mv[i]] if rev else mv[i]
        self._cs.value(0)
        try:
            self._spi.write(memoryview(out)[: n + 1])
        finally:
            self._cs.value(1)

    def ready(self):
        self._lead[0] = self._b(SPI_STATUS)
        self._cs.value(0)
        try:
            self._spi.write(self._lead)
            self._spi.readinto(self._one)
        finally:
            self._cs.value(1)
        return bool(self._b(self._one[0]) & 0x01)

    def begin_read(self, hint):
        self._lead[0] = self._b(SPI_READ)
        self._cs.value(0)
        self._spi.write(self._lead)

    def read_into(self, mv, n):
        self._spi.readinto(mv[:n] if n < len(mv) else mv)
        rev = self._rev
        if rev:
            for i in range(n):
                mv[i] = rev[mv[i]]
        return n

    def end_read(self):
        self._cs.value(1)

    def drain(self, scratch):
        return 0  # the host clocks SPI: nothing arrives unasked


class I2cTransport:
    """I2C at 0x24. A read returns a status byte (01 = ready) then the frame;
    a frame is read in one transaction of `hint` bytes, then served from here.
    On an ESP32, give the bus a timeout of 1 ms or more: the PN532 stretches
    the clock for about 440 us (esphome#4340)."""

    name = "i2c"

    def __init__(self, i2c, addr=I2C_ADDRESS, frame_max=276):
        self._i2c = i2c
        self._addr = addr
        self._buf = bytearray(frame_max + 1)
        self._st = bytearray(1)
        self._pos = 0
        self._n = 0

    def wakeup(self):
        # An address match wakes the chip; the first transfer may be NAKed.
        try:
            self._i2c.writeto(self._addr, b"\x00")
        except OSError:
            pass
        sleep_ms(2)

    def write(self, mv):
        try:
            self._i2c.writeto(self._addr, mv)
        except OSError:
            pass  # NAK (asleep, absent): the missing ACK frame reports it

    def ready(self):
        try:
            self._i2c.readfrom_into(self._addr, self._st)
        except OSError:
            return False
        return bool(self._st[0] & 0x01)

    def begin_read(self, hint):
        m = min(hint + 1, len(self._buf))
        self._pos = 1
        self._n = 1
        try:
            self._i2c.readfrom_into(self._addr, memoryview(self._buf)[:m])
        except OSError:
            return
        if self._buf[0] & 0x01:
            self._n = m

    def read_into(self, mv, n):
        k = self._n - self._pos
        if k > n:
            k = n
        if k <= 0:
            return 0
        mv[:k] = memoryview(self._buf)[self._pos : self._pos + k]
        self._pos += k
        return k

    def end_read(self):
        self._pos = 0
        self._n = 0

    def drain(self, scratch):
        return 0
