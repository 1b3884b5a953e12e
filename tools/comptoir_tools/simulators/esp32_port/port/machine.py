# `machine` of the ESP32 port, as far as the firmware uses it: UART, Pin, SPI,
# I2C, WDT, reset, unique_id. Semantics from ports/esp32 (v1.23 .. v1.29
# preview); each behaviour names its source.
import _port
from _port import CFG, Fd, Ring, console, idf_log, service, wait

# ---------------------------------------------------------------- errors
# ports/esp32/mphalport.c check_esp_err_: an esp_err_t becomes OSError(-code,
# name), except ESP_ERR_NO_MEM -> ENOMEM, ESP_ERR_TIMEOUT -> ETIMEDOUT.
ESP_FAIL = -1
ESP_ERR_INVALID_STATE = 0x103
ESP_ERR_INVALID_ARG = 0x102


def _esp_err(code, name):
    if code == 0x101:  # ESP_ERR_NO_MEM
        return OSError(12, name)
    if code == 0x107:  # ESP_ERR_TIMEOUT
        return OSError(116, name)
    return OSError(-code, name)


# ---------------------------------------------------------------- Pin
# ports/esp32/machine_pin.c / machine_pin.h: which GPIOs exist, which are
# input-only, which a PSRAM build hides.
def _valid_pins():
    if CFG["chip"] == "esp32s3":
        return set(range(0, 22)) | set(range(26, 49))
    pins = set(range(0, 40)) - {20, 24, 28, 29, 30, 31}
    if CFG.get("psram"):
        pins -= {16, 17}  # machine_pin.h: hidden when CONFIG_SPIRAM is set
    return pins


def _input_only(n):
    return CFG["chip"] == "esp32" and 34 <= n <= 39


_levels = {}
_listeners = {}  # GPIO -> callable(level): the stand-in's own wiring (SPI CS)


class Pin:
    IN = 1
    OUT = 3  # GPIO_MODE_INPUT_OUTPUT: machine_pin.c makes an OUT pin readable
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if isinstance(id, Pin):
            id = id.id
        if id not in _valid_pins():
            raise ValueError("invalid pin")
        self.id = id
        self._mode = None
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if mode != -1 and mode is not None:
            if mode & 2 and _input_only(self.id):
                raise ValueError("pin can only be input")  # machine_pin.c
            self._mode = mode
        if value is not None:
            self._set(value)

    def _set(self, v):
        v = 1 if v else 0
        if _levels.get(self.id) == v:
            return
        _levels[self.id] = v
        cb = _listeners.get(self.id)
        if cb is not None:
            cb(v)
        out = CFG["outputs"].get(self.id)
        if out is not None and self._mode is not None and self._mode & 2:
            name, low = out
            console("OUT %s %d" % (name, (1 - v) if low else v))

    def value(self, v=None):
        if v is None:
            return _levels.get(self.id, 0)
        self._set(v)

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self._set(1)

    def off(self):
        self._set(0)


# ---------------------------------------------------------------- UART
_UART_FIFO = 128  # SOC_UART_FIFO_LEN
_REPL_RX = {"esp32": 3, "esp32s3": 44}  # U0RXD's IO_MUX pin
_uarts = {}


class UART:
    INV_TX = 1
    INV_RX = 2
    RTS = 1
    CTS = 2

    def __new__(cls, id, *args, **kw):
        # ports/esp32/machine_uart.c: one static object per UART number.
        if id in _uarts:
            u = _uarts[id]
        else:
            u = object.__new__(cls)
            u._made = False
        return u

    def __init__(self, id, baudrate=None, bits=8, parity=None, stop=1, *, tx=None, rx=None,
                 rts=None, cts=None, txbuf=None, rxbuf=None, timeout=None, timeout_char=None,
                 invert=0, flow=0):
        n_ids = 3
        if not (0 <= id < n_ids):
            raise ValueError("UART(%d) does not exist" % id)
        if id == 0 and CFG["uart_repl"]:
            self._repl_uart(baudrate)
            return
        if self._made:
            if baudrate is not None:
                self.baudrate = baudrate
            return
        self.id = id
        self.baudrate = baudrate or 115200
        # machine_uart_obj_t.rxbuf / txbuf are uint16_t (machine_uart.c l.111-112,
        # v1.23 .. v1.29): 65536 is stored as 0.
        rxb = (256 if rxbuf is None else rxbuf) & 0xFFFF
        txb = (256 if txbuf is None else txbuf) & 0xFFFF
        # ESP-IDF uart_driver_install: "uart rx buffer length error" unless
        # rx_buffer_size > SOC_UART_FIFO_LEN; tx 0 or > the FIFO.
        if rxb <= _UART_FIFO:
            idf_log(1, "uart", "uart_driver_install(%d): uart rx buffer length error" % 1680)
            raise _esp_err(ESP_FAIL, "ESP_FAIL")
        if txb and txb <= _UART_FIFO:
            idf_log(1, "uart", "uart_driver_install(%d): uart tx buffer length error" % 1681)
            raise _esp_err(ESP_FAIL, "ESP_FAIL")
        # The rings come from the IDF heap (uart_alloc_driver_obj, UART_MALLOC_CAPS:
        # internal RAM), not from the Python heap.
        # (The stand-in's ring also holds the 128-byte hardware FIFO.)
        store = _port.internal[0].alloc(rxb + _UART_FIFO + 1)
        if store is None or (txb and _port.internal[0].alloc(txb) is None):
            raise _esp_err(0x101, "ESP_ERR_NO_MEM")
        console("[esp32] IDF internal heap used %d" % _port.internal[0].used)
        self.rxbuf = rxb
        self.txbuf = txb
        self.timeout = timeout or 0
        self.timeout_char = timeout_char or 0
        self.tx = tx
        self.rx = rx
        # UART id -> what its pins lead to in the twin; nothing: an unconnected line.
        spec = CFG["uarts"].get(id)
        self._fd = Fd(spec) if spec else None
        # The IDF ring (rxbuf) behind the 128-byte FIFO: beyond both, bytes are lost.
        self._ring = Ring(rxb + _UART_FIFO + 1, store)
        self._chunk = _port.outside_buf(256)
        self._chunk_mv = self._chunk
        self._tx_done_at = 0.0
        # Finding 3 (inferred from ESP-IDF >= 5.5 uart_set_pin, to confirm on a
        # board): a GPIO-matrix RX on U0RXD's pin keeps its IO_MUX function, so
        # UART0's REPL ISR (ports/esp32/uart.c uart_irq_handler) sees the bytes too.
        self._shared_repl = (CFG["uart_repl"] and CFG.get("s3_rx_shared", True)
                             and rx == _REPL_RX.get(CFG["chip"]) and id != 0)
        self._made = True
        _uarts[id] = self
        _port.add_device(self, self._fd.pollable if self._fd else None)

    def _repl_uart(self, baudrate):
        # Finding 1. machine_uart.c mp_machine_uart_init_helper (v1.23.0 ..
        # v1.29-preview): the REPL UART gets no IDF driver (uart.c uart_stdout_init
        # uses the HAL), the rate is switched first (uart_set_baudrate, l.361-363),
        # then uart_set_rx_full_threshold (l.444-448, unconditional since 20f85fb26e)
        # fails: ESP_ERR_INVALID_STATE "call uart_driver_install API first"; from
        # v1.27, uart_flush_input (l.473) would fail too (ESP_FAIL).
        r = _port.REPL[0]
        if baudrate is not None and r is not None:
            r.baud = baudrate
        idf_log(1, "uart", "uart_set_rx_full_threshold(1578): call uart_driver_install API first")
        raise _esp_err(ESP_ERR_INVALID_STATE, "ESP_ERR_INVALID_STATE")

    # the ISR ------------------------------------------------------------------
    def _service(self):
        fd = self._fd
        if fd is None:
            return
        ki = False
        while True:
            k = fd.read_into(self._chunk_mv)
            if not k:
                break
            for i in range(k):
                c = self._chunk[i]
                self._ring.put(c)  # full: lost (FIFO overflow)
                if self._shared_repl:
                    r = _port.REPL[0]
                    if r is not None and r.isr(c):
                        ki = True
        if ki:
            raise KeyboardInterrupt

    def _ready(self):
        return self._ring.count() > 0

    # the API ------------------------------------------------------------------
    def any(self):
        service()
        return self._ring.count()

    def readinto(self, buf, nbytes=-1):
        # machine_uart.c mp_machine_uart_read: uart_read_bytes; nothing -> None
        # (EAGAIN). timeout: wait for the first byte; timeout_char in ticks
        # (pdMS_TO_TICKS: 2 ms is 0 ticks at 100 Hz, so no wait).
        n = len(buf) if nbytes is None or nbytes < 0 or nbytes > len(buf) else nbytes
        service()
        ring = self._ring
        if not ring.count() and self.timeout:
            end = _port.now_ms() + self.timeout
            while not ring.count() and _port.now_ms() < end:
                wait(1)
        got = 0
        while got < n and ring.count():
            buf[got] = ring.get()
            got += 1
        if got < n and got and self.timeout_char * CFG["tick_hz"] // 1000:
            end = _port.now_ms() + self.timeout_char
            while got < n and _port.now_ms() < end:
                wait(1)
                while got < n and ring.count():
                    buf[got] = ring.get()
                    got += 1
        return got or None

    def read(self, nbytes=-1):
        service()
        n = self._ring.count() if nbytes is None or nbytes < 0 else nbytes
        b = bytearray(n if n else 1)
        k = self.readinto(b, n)
        return bytes(b[:k]) if k else None

    def write(self, buf):
        # uart_write_bytes: blocks until the bytes are in the TX ring (txbuf) or,
        # without one, in the FIFO; they leave at the line rate.
        mv = memoryview(buf)
        n = len(mv)
        rate = self.baudrate / 10000.0  # bytes per ms, 8N1
        cap = self.txbuf + _UART_FIFO
        now = _port.now_ms()
        pending = (self._tx_done_at - now) * rate
        if pending < 0:
            pending = 0
        over = pending + n - cap
        if over > 0:
            end = now + over / rate
            while _port.now_ms() < end:
                wait(int(end - _port.now_ms()) + 1)
            now = _port.now_ms()
        start = self._tx_done_at if self._tx_done_at > now else now
        self._tx_done_at = start + n / rate
        if self._fd is not None:
            self._fd.write(mv)
        service()
        return n

    def flush(self):
        while _port.now_ms() < self._tx_done_at:
            wait(int(self._tx_done_at - _port.now_ms()) + 1)

    def txdone(self):
        return _port.now_ms() >= self._tx_done_at

    def deinit(self):
        pass

    def init(self, *a, **kw):
        self.__init__(self.id, *a, **kw)


# ---------------------------------------------------------------- SPI
class SPI:
    MSB = 0
    LSB = 1

    def __init__(self, id, baudrate=500000, *, polarity=0, phase=0, bits=8, firstbit=0,
                 sck=None, mosi=None, miso=None):
        # machine_hw_spi.c: SPI(1) = SPI2/HSPI, SPI(2) = SPI3/VSPI on the ESP32.
        if id not in (1, 2):
            raise ValueError("SPI(%d) doesn't exist" % id)
        self.id = id
        self.baudrate = baudrate
        self.polarity = polarity
        self.phase = phase
        # firstbit=LSB: SPI_DEVICE_TXBIT_LSBFIRST | SPI_DEVICE_RXBIT_LSBFIRST (l.254).
        self.firstbit = firstbit
        self._dev = None
        spec = CFG.get("spi", {}).get(id)
        if spec:
            from _pn532bus import Pn532Spi

            self._dev = Pn532Spi(spec, self)

    def write(self, buf):
        service()
        if self._dev is not None:
            self._dev.write(buf)

    def readinto(self, buf, write=0):
        service()
        if self._dev is not None:
            self._dev.readinto(buf)
        else:
            for i in range(len(buf)):
                buf[i] = 0xFF  # MISO pulled up, nothing answers

    def read(self, n, write=0):
        b = bytearray(n)
        self.readinto(b, write)
        return bytes(b)

    def write_readinto(self, wbuf, rbuf):
        self.write(wbuf)
        self.readinto(rbuf)

    def deinit(self):
        pass


# ---------------------------------------------------------------- I2C
class I2C:
    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        if id not in (0, 1):
            raise ValueError("I2C(%d) doesn't exist" % id)
        self.id = id
        self.freq = freq
        self.timeout_us = timeout
        self._dev = None
        spec = CFG.get("i2c", {}).get(id)
        if spec:
            from _pn532bus import Pn532I2c

            self._dev = Pn532I2c(spec, self)

    def _check_time(self, nbytes):
        # Finding 6. machine_i2c.c: with MICROPY_HW_ESP_NEW_I2C_DRIVER (on from
        # ESP-IDF 5.5.2, mpconfigport.h l.149-150) `timeout` (us) / 1000 is the
        # whole transfer's timeout in ms (i2c_master_transmit/receive,
        # l.129-160); the legacy driver took it as the clock-stretch limit
        # (i2c_set_timeout, l.239-240). The PN532 stretches ~440 us.
        t_ms = (nbytes + 1) * 9 * 1000 / self.freq
        if CFG.get("i2c_new_driver", True):
            if t_ms > self.timeout_us // 1000:
                idf_log(1, "i2c.master", "I2C transaction timeout detected")
                raise OSError(116, "ETIMEDOUT")
        elif self.timeout_us < 440:
            raise OSError(116, "ETIMEDOUT")

    def writeto(self, addr, buf, stop=True):
        service()
        self._check_time(len(buf))
        if self._dev is None or addr != self._dev.addr:
            raise OSError(19, "ENODEV")  # no ACK
        self._dev.write(buf)
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        service()
        self._check_time(len(buf))
        if self._dev is None or addr != self._dev.addr:
            raise OSError(19, "ENODEV")
        self._dev.readinto(buf)

    def readfrom(self, addr, n, stop=True):
        b = bytearray(n)
        self.readfrom_into(addr, b)
        return bytes(b)

    def scan(self):
        return [self._dev.addr] if self._dev else []


# ---------------------------------------------------------------- WDT, reset
class WDT:
    def __init__(self, id=0, timeout=5000):
        # machine_wdt.c: timeout_ms <= 0 -> ValueError; the task WDT, not stoppable.
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        self.timeout = timeout
        self._last = _port.now_ms()
        _port._wdt[0] = self

    def feed(self):
        self._last = _port.now_ms()

    def _check(self):
        if _port.now_ms() - self._last > self.timeout:
            _port.reset(70, "WDT: not fed for %d ms" % self.timeout)


PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


def reset():
    _port.reset(71, "machine.reset()")


def soft_reset():
    _port.reset(71, "machine.soft_reset()")


def reset_cause():
    return CFG.get("reset_cause", PWRON_RESET)


def unique_id():
    # esp_efuse_mac_get_default: the 6-byte base MAC.
    return CFG["unique_id"]


def freq(*a):
    return 240000000 if CFG["chip"] == "esp32s3" else 160000000


def idle():
    wait(_port.tick_ms())


def disable_irq():
    return 0


def enable_irq(state=0):
    pass
