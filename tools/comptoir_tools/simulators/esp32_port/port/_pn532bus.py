# A PN532 on the SPI or I2C bus of the stand-in. The twin's PN532 simulator
# (tools/comptoir_tools/simulators/pn532_sim.py) speaks HSU on a pseudo-terminal; this is
# the chip's SPI / I2C interface in front of it (PN532 user manual UM0701-02
# §6.2.5 SPI: DW 01 / SR 02 / DR 03, LSB first on the wire; §6.2.4 I2C at 0x24:
# a read starts with the status byte, 01 = a frame is ready). Each frame the
# host writes goes to the simulator's serial line behind an HSU wake-up
# preamble (the SPI/I2C interface wakes the chip by itself); each frame the
# simulator answers is served whole to the next DR / I2C read.
import _port
from _port import Fd

_WAKE = b"\x55\x55" + b"\x00" * 14
_REV = bytearray(256)
for _i in range(256):
    _v = 0
    for _b in range(8):
        if _i & (1 << _b):
            _v |= 0x80 >> _b
    _REV[_i] = _v


class _Chip:
    """The simulator's serial line and the frames it has answered."""

    def __init__(self, path):
        self.fd = Fd(path)
        self.rx = _port.outside_buf(2048)
        self.n = 0
        self._mv = self.rx
        self.out = _port.outside_buf(300)
        self.nout = 0
        _port.add_device(self, self.fd.pollable)

    def _service(self):
        while self.n < len(self.rx):
            k = self.fd.read_into(self._mv[self.n :])
            if not k:
                break
            self.n += k

    def frame_len(self):
        """Length of the first whole frame waiting (from its preamble), else 0."""
        rx = self.rx
        n = self.n
        i = 0
        while i + 1 < n and not (rx[i] == 0 and rx[i + 1] == 0xFF):
            i += 1
        if i + 3 >= n:
            return 0
        ln, lcs = rx[i + 2], rx[i + 3]
        if (ln == 0 and lcs == 0xFF) or (ln == 0xFF and lcs == 0):
            end = i + 4  # ACK / NACK
        elif ln == 0xFF and lcs == 0xFF:  # extended frame
            if i + 6 >= n:
                return 0
            end = i + 7 + ((rx[i + 4] << 8) | rx[i + 5]) + 1
        else:
            end = i + 4 + ln + 1  # data and DCS
        if end > n:
            return 0
        if end < n and rx[end] == 0:
            end += 1  # postamble
        return end

    def pop(self, k):
        self.rx[: self.n - k] = bytes(self.rx[k : self.n])
        self.n -= k

    def send(self):
        if self.nout:
            self.fd.write(_WAKE)
            self.fd.write(self.out[: self.nout])
            self.nout = 0

    def add_out(self, b):
        if self.nout < len(self.out):
            self.out[self.nout] = b
            self.nout += 1


class Pn532Spi:
    def __init__(self, spec, spi):
        import machine

        self._spi = spi
        self._chip = _Chip(spec["hsu"])
        self._lead = -1  # the transaction's first byte; -1: none yet
        self._pos = 0
        self._flen = 0
        machine._listeners[spec["cs"]] = self._cs

    def _b(self, v):
        # LSB first on the wire: with firstbit=MSB the chip sees each byte mirrored.
        return v if self._spi.firstbit == 1 else _REV[v]

    def _cs(self, level):
        if level == 0:
            self._lead = -1
            return
        if self._lead == 1:
            self._chip.send()
        elif self._lead == 3 and self._flen:
            self._chip.pop(self._flen)
        self._lead = -1
        self._flen = 0

    def write(self, buf):
        for i in range(len(buf)):
            v = self._b(buf[i])
            if self._lead < 0:
                self._lead = v
                self._pos = 0
                if v == 3:
                    self._flen = self._chip.frame_len()
            elif self._lead == 1:
                self._chip.add_out(v)

    def readinto(self, buf):
        chip = self._chip
        for i in range(len(buf)):
            v = 0
            if self._lead == 2:
                v = 1 if chip.frame_len() else 0
            elif self._lead == 3 and self._pos < self._flen:
                v = chip.rx[self._pos]
                self._pos += 1
            buf[i] = self._b(v)


class Pn532I2c:
    addr = 0x24

    def __init__(self, spec, i2c):
        self._chip = _Chip(spec["hsu"])

    def write(self, buf):
        chip = self._chip
        for i in range(len(buf)):
            chip.add_out(buf[i])
        chip.send()

    def readinto(self, buf):
        chip = self._chip
        flen = chip.frame_len()
        buf[0] = 1 if flen else 0
        for i in range(1, len(buf)):
            buf[i] = chip.rx[i - 1] if flen and i - 1 < flen else 0
        if flen and len(buf) > 1:
            chip.pop(flen)
