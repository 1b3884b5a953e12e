# The ESP32 port stand-in's shared state: configuration, the clock, the "ISR"
# that moves received bytes into ring buffers, the REPL's UART, the IDF heap.
#
# This runs on the MicroPython unix port, *below* the shipped firmware: the
# firmware's own board/esp32.py and cam/esp32.py import `machine`, `camera`,
# `esp`, `time`, `select`, `sys`, `micropython` and get these modules instead of
# the unix port's (launch.py puts them in sys.modules before main.py runs).
#
# Sources followed (the review /work/shared/reviews/esp32-port.md names them):
# micropython/micropython ports/esp32 v1.23.0 .. v1.29.0-preview-731 (HEAD
# 1c3c201149), cnadler86/micropython-camera-API 8df3f70, ESP-IDF
# components/esp_driver_uart/src/uart.c (v5.3.1 and master).
#
# Where the stand-in cannot be the port: the "interrupts" (a byte arriving on a
# UART, the watchdog expiring) are serviced at every stand-in call (ticks,
# sleep, poll, UART and SPI operations), which is where a MicroPython main loop
# spends its time, not at the instant the byte arrives.
import gc
import io
import sys as _sys

_p = _sys.path
_sys.path = ()  # import the unix port's built-ins, not the stand-in's files
try:
    import os as _os
    import select as _select
    import time as _time
finally:
    _sys.path = _p
    del _p

import micropython as _mp

real_open = open  # launch.py later points the name `open` at the board's flash

CFG = {
    "chip": "esp32",  # or "esp32s3"
    "version": (1, 29),  # MicroPython version the stand-in behaves as
    "uart_repl": True,  # the image has a REPL on UART0 (ESP32_GENERIC, ESP32_GENERIC_S3)
    "repl_baud": 115200,  # MICROPY_HW_UART_REPL_BAUD of the image
    "s3_rx_shared": True,  # finding 3: IDF >= 5.5 leaves GPIO44 routed to U0RXD
    "i2c_new_driver": True,  # finding 6: MICROPY_HW_ESP_NEW_I2C_DRIVER (IDF >= 5.5.2)
    "tick_hz": 100,  # CONFIG_FREERTOS_HZ: not set in boards/sdkconfig.base, IDF default
    "uarts": {},  # UART id -> "stdio" | pty path | "socket:PATH"
    "outputs": {},  # GPIO -> (name, active_low): what is soldered to it
    "unique_id": b"\x24\x0a\xc4\x00\x00\x01",
    "log": True,
}

# ---------------------------------------------------------------- console
# What a person sees on the board's console: the OUT lines of the LEDs and the
# buzzer, the stand-in's own messages. The twin reads them on stderr.
_err = _sys.stderr


def console(text):
    _err.write(text)
    _err.write("\n")


# ---------------------------------------------------------------- clock
# py/mpconfig.h: MICROPY_PY_TIME_TICKS_PERIOD = MP_SMALL_INT_POSITIVE_MASK + 1,
# 2**30 on a 32-bit port (31-bit small ints), all versions.
TICKS_PERIOD = 1 << 30
TICKS_MAX = TICKS_PERIOD - 1
TICKS_HALF = TICKS_PERIOD >> 1
SMALL_INT_MIN = -(1 << 30)
SMALL_INT_MAX = (1 << 30) - 1
# A long int's object pointer in the ESP32's data RAM, read as a small int by
# MP_OBJ_SMALL_INT_VALUE (p >> 1): what time_ticks_diff sees when it is given a
# value that is not a small int (extmod/modtime.c, no check, all versions).
_LONG_INT_AS_SMALL = 0x3FFB2A40 >> 1

_t0 = _time.ticks_ms()
_t0us = _time.ticks_us()
_offset = [0]  # ticks_ms at start (launch --ticks-start), plus test advances


def _elapsed_ms():
    return _time.ticks_diff(_time.ticks_ms(), _t0)


def _small(v):
    if SMALL_INT_MIN <= v <= SMALL_INT_MAX:
        return v
    return _LONG_INT_AS_SMALL


def ticks_ms():
    service()
    return (_elapsed_ms() + _offset[0]) & TICKS_MAX


def ticks_us():
    service()
    return (_time.ticks_diff(_time.ticks_us(), _t0us) + _offset[0] * 1000) & TICKS_MAX


def ticks_cpu():
    return ticks_us()


def ticks_diff(end, start):
    # extmod/modtime.c time_ticks_diff: both read with MP_OBJ_SMALL_INT_VALUE.
    d = ((_small(end) - _small(start) + TICKS_HALF) & TICKS_MAX) - TICKS_HALF
    return d


def ticks_add(ticks, delta):
    # extmod/modtime.c time_ticks_add: delta must be within half a period.
    if not (-TICKS_HALF <= delta < TICKS_HALF):
        raise OverflowError("ticks interval overflow")
    return (_small(ticks) + delta) & TICKS_MAX


def advance_ms(ms):
    """Tests: the board's clock jumps ahead (as if it had run that long)."""
    _offset[0] += ms


def now_ms():
    """Monotonic milliseconds since start, without servicing (for the models)."""
    return _elapsed_ms()


def tick_ms():
    return 1000 // CFG["tick_hz"]


# ---------------------------------------------------------------- interrupts
# Devices with something to do when bytes arrive (UARTs, the REPL) register
# here; service() runs them. _rpoll waits on all their descriptors at once.
_devices = []
_rpoll = _select.poll()
_wdt = [None]  # the machine.WDT model once created
_in_service = [False]


def add_device(dev, fileobj):
    _devices.append(dev)
    if fileobj is not None:
        _rpoll.register(fileobj, _select.POLLIN)


_last_service = [-1]
_clock_read = [0]
_clock_applied = [0]


def _read_clock_file():
    """Tests move the board's clock (launch --clock-file PATH): each new line is
    "advance MS" (time passed) or "set TICKS" (ticks_ms() reads TICKS now)."""
    try:
        with real_open(CFG["clock_file"]) as f:
            lines = f.read().split("\n")
    except OSError:
        return
    for line in lines[_clock_applied[0]:]:
        parts = line.split()
        if len(parts) != 2:
            break
        _clock_applied[0] += 1
        n = int(parts[1])
        if parts[0] == "advance":
            _offset[0] += n
        elif parts[0] == "set":
            _offset[0] += n - ((_elapsed_ms() + _offset[0]) & TICKS_MAX)
_last_idf_error = [0]


def service(force=False):
    # At most once a millisecond unless forced: the firmware reads the clock far
    # more often than bytes arrive, and each pass polls every device.
    now = _elapsed_ms()
    if (now == _last_service[0] and not force) or _in_service[0]:
        return
    _last_service[0] = now
    _in_service[0] = True
    try:
        for d in _devices:
            d._service()
        w = _wdt[0]
        if w is not None:
            w._check()
        if CFG.get("clock_file") and now - _clock_read[0] >= 100:
            _clock_read[0] = now
            _read_clock_file()
        every = CFG.get("idf_error_every_ms", 0)
        if every and now - _last_idf_error[0] >= every:
            # A stand-in for the IDF's error logs that a board makes now and then (a
            # driver's ESP_LOGE), at the default level ERROR: onto UART0 (finding 12).
            _last_idf_error[0] = now
            idf_log(LOG_ERROR, "gpio", "gpio_set_level(227): GPIO output gpio_num error")
    finally:
        _in_service[0] = False


def wait(ms):
    """Sleep up to ms (0: just service), waking when a device's descriptor is
    readable; interrupts are serviced on the way (a KeyboardInterrupt or a
    watchdog reset is raised from here)."""
    service(True)
    if ms <= 0:
        return
    for _ in _rpoll.ipoll(ms):
        break
    service(True)


def sleep_ms(ms):
    end = _elapsed_ms() + ms
    while True:
        left = end - _elapsed_ms()
        if left <= 0:
            service()
            return
        wait(left if left < 10 else 10)


def reset(status, why):
    console("[esp32] %s: reset (exit status %d)" % (why, status))
    raise SystemExit(status)


# ---------------------------------------------------------------- IDF heap
# Memory the firmware's Python heap does not see: UART ring buffers come from
# the IDF heap in internal RAM (uart.c uart_alloc_driver_obj, UART_MALLOC_CAPS),
# camera frame buffers from PSRAM. launch.py preallocates both arenas before
# the firmware starts, so they do not count against the firmware's heap.
class Arena:
    def __init__(self, name, size, signed=False):
        self.name = name
        self.size = size
        if signed:  # camera frame buffers: modcamera.c hands out 'b' memoryviews
            import array

            self._buf = array.array("b", bytearray(size))
        else:
            self._buf = bytearray(size)
        self.used = 0
        self.min_free = size

    def alloc(self, n):
        if n > self.size - self.used:
            return None
        mv = memoryview(self._buf)[self.used : self.used + n]
        self.used += n
        if self.size - self.used < self.min_free:
            self.min_free = self.size - self.used
        return mv

    def free(self):
        return self.size - self.used


internal = [Arena("internal", 0)]
psram = [Arena("psram", 0)]
# The stand-in's own buffers for hardware that has them outside MicroPython's
# heap (a UART's FIFO reads, the PN532's SPI/I2C interface), so the firmware's
# heap holds only what it holds on a board.
outside = [Arena("outside", 0)]


def outside_buf(n):
    mv = outside[0].alloc(n)
    return mv if mv is not None else memoryview(bytearray(n))


# ---------------------------------------------------------------- IDF log
# esp_log_level_set("*", level) through esp.osdebug (ports/esp32/modesp.c);
# the default level is ERROR (boards/sdkconfig.base CONFIG_LOG_DEFAULT_LEVEL).
# IDF logs go to UART0 (the console UART), whatever runs there.
LOG_NONE, LOG_ERROR, LOG_WARN, LOG_INFO = 0, 1, 2, 3
log_level = [LOG_ERROR]


def idf_log(level, tag, text):
    if level > log_level[0]:
        return
    letter = "?EWIDV"[level] if level < 6 else "V"
    uart0_print("%s (%d) %s: %s\r\n" % (letter, _elapsed_ms(), tag, text))


def uart0_print(text):
    """Bytes the IDF or a driver writes to UART0 with its own printf."""
    r = REPL[0]
    if r is not None:
        r.raw_write(text.encode())
    else:
        console(text.rstrip())


# ---------------------------------------------------------------- ring buffer
class Ring:
    """py/ringbuf.h: a byte ring of `size`, holding size - 1 bytes;
    ringbuf_put returns -1 (the byte is lost) when full."""

    def __init__(self, size, storage=None):
        self.size = size
        self.buf = storage if storage is not None else bytearray(size)
        self.iget = 0
        self.iput = 0
        self.dropped = 0

    def count(self):
        n = self.iput - self.iget
        return n + self.size if n < 0 else n

    def put(self, b):
        nxt = self.iput + 1
        if nxt >= self.size:
            nxt = 0
        if nxt == self.iget:
            self.dropped += 1
            return False
        self.buf[self.iput] = b
        self.iput = nxt
        return True

    def get(self):
        b = self.buf[self.iget]
        nxt = self.iget + 1
        self.iget = 0 if nxt >= self.size else nxt
        return b

    def clear(self):
        self.iget = self.iput = 0


# ---------------------------------------------------------------- byte sources
class Fd:
    """A pseudo-terminal, the process's stdin/stdout, or a Unix socket: where a
    UART's pins lead in the twin."""

    def __init__(self, spec):
        self.spec = spec
        self._sock = None
        if spec == "stdio":
            self.rf = _sys.stdin.buffer
            self.wf = _sys.stdout.buffer
            self.pollable = _sys.stdin
        elif spec.startswith("socket:"):
            import socket
            import struct

            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(struct.pack("H", socket.AF_UNIX) + spec[7:].encode() + b"\0")
            s.setblocking(False)
            self._sock = s
            self.rf = self.wf = self.pollable = s
        else:
            import termios

            f = real_open(spec, "r+b")
            fd = f.fileno()
            termios.setraw(fd)
            attrs = termios.tcgetattr(fd)
            attrs[6][6] = 0  # VMIN: a read returns at once with what is there
            attrs[6][5] = 0  # VTIME
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
            self.rf = self.wf = self.pollable = f
        self._poll = _select.poll()
        self._poll.register(self.pollable, _select.POLLIN)
        self._one = bytearray(1)
        self.eof = False

    def readable(self):
        for _ in self._poll.ipoll(0):
            return True
        return False

    def read_into(self, mv):
        """What is waiting (0 when nothing); never blocks."""
        if not self.readable():
            return 0
        if self._sock is not None:
            try:
                k = self._sock.readinto(mv)
            except OSError:
                return 0
            if k == 0:
                self.eof = True
            return k or 0
        if self.spec == "stdio":
            # A blocking pipe: a stream read waits until the buffer is full
            # (py/stream.c mp_stream_rw loops), so one byte while poll says one is there.
            k = 0
            one = self._one
            while k < len(mv) and self.readable():
                if not self.rf.readinto(one):
                    self.eof = True  # readable and nothing came: the pipe closed
                    break
                mv[k] = one[0]
                k += 1
            return k
        k = self.rf.readinto(mv)
        return k or 0

    def write(self, mv):
        done = 0
        n = len(mv)
        while done < n:
            if self._sock is not None:
                self._sock.setblocking(True)
                try:
                    k = self._sock.write(mv[done:])
                finally:
                    self._sock.setblocking(False)
            else:
                k = self.wf.write(mv[done:])
            if not k:
                for _ in _rpoll.ipoll(5):
                    break
                continue
            done += k
        if self.spec == "stdio":
            self.wf.flush() if hasattr(self.wf, "flush") else None


# ---------------------------------------------------------------- the REPL UART
REPL = [None]
intr_char = [-1]  # mp_interrupt_char (shared/runtime/interrupt_char.c)


class Repl:
    """UART0 as the REPL owns it on an ESP32_GENERIC image: no IDF driver, the
    HAL and MicroPython's own ISR (ports/esp32/uart.c, uart_stdout_init and
    uart_irq_handler, v1.23 .. v1.29):

    * every received byte that is mp_interrupt_char raises KeyboardInterrupt
      (mp_sched_keyboard_interrupt), every other goes into stdin_ringbuf, 260
      bytes (ports/esp32/mphalport.c stdin_ringbuf_array[260]); a byte that does
      not fit is lost without a trace (py/ringbuf.h ringbuf_put -> -1);
    * sys.stdout.buffer.write (mp_hal_stdout_tx_strn -> uart_stdout_tx_strn):
      fill the 128-byte TX FIFO, then ulTaskNotifyTake(pdFALSE, 1): sleep to the
      next FreeRTOS tick; return once the last byte is in the FIFO.
    """

    FIFO = 128

    def __init__(self, spec, baud):
        self.fd = Fd(spec) if spec else None
        self.baud = baud
        self.ring = Ring(260)
        self._chunk = bytearray(256)
        self._chunk_mv = memoryview(self._chunk)
        self._fifo_empty_at = 0.0  # ms (now_ms scale) when the TX FIFO has drained
        self.eof = False
        self._line = bytearray()
        add_device(self, self.fd.pollable if self.fd else None)
        REPL[0] = self

    def _service(self):
        fd = self.fd
        if fd is None:
            return
        raise_ki = False
        while True:
            k = fd.read_into(self._chunk_mv)
            if not k:
                break
            for i in range(k):
                if self.isr(self._chunk[i]):
                    raise_ki = True
        if fd.eof:
            self.eof = True
        if raise_ki:
            raise KeyboardInterrupt

    def isr(self, c):
        """uart_irq_handler for one byte; True when it raises KeyboardInterrupt."""
        if c == intr_char[0]:
            return True
        self.ring.put(c)
        return False

    def _ready(self):
        return self.ring.count() > 0 or self.eof

    # stdin --------------------------------------------------------------------
    def read_byte(self):
        # mp_hal_stdin_rx_chr: wait (MICROPY_EVENT_POLL_HOOK) until the ring has one.
        while True:
            service()
            if self.ring.count():
                return self.ring.get()
            if self.eof:
                return -1
            wait(tick_ms())

    # stdout -------------------------------------------------------------------
    def _fifo_level(self, now):
        left = self._fifo_empty_at - now
        if left <= 0:
            return 0
        return int(left * self.baud / 10000) + 1

    def tx(self, mv):
        """uart_stdout_tx_strn: FIFO, then a tick's sleep, until all is in."""
        n = len(mv)
        done = 0
        byte_ms = 10000 / self.baud
        tick = tick_ms()
        while True:
            now = now_ms()
            space = self.FIFO - self._fifo_level(now)
            k = n - done
            if k > space:
                k = space
            if k > 0:
                self.raw_write(mv[done : done + k])
                start = self._fifo_empty_at if self._fifo_empty_at > now else now
                self._fifo_empty_at = start + k * byte_ms
                done += k
            if done >= n:
                return n
            # ulTaskNotifyTake(pdFALSE, 1): until the next tick of the 100 Hz grid.
            wake = (now // tick + 1) * tick
            while now_ms() < wake:
                wait(int(wake - now_ms()) + 1)

    def raw_write(self, mv):
        if self.fd is not None:
            self.fd.write(mv)
            return
        # No UART0 wired in the twin: its text goes to the console, by lines.
        line = self._line
        for i in range(len(mv)):
            c = mv[i]
            if c == 10:
                console(bytes(line).decode().rstrip("\r"))
                line[:] = b""
            elif len(line) < 200:
                line.append(c)


class _Stdin(io.IOBase):
    """sys.stdin and sys.stdin.buffer: the same raw object on the ESP32
    (shared/runtime/sys_stdio_mphal.c), no newline translation."""

    def __init__(self, repl):
        self._r = repl

    @property
    def buffer(self):
        return self

    def readinto(self, buf, n=-1):
        # stdio_read: one mp_hal_stdin_rx_chr per byte, until len(buf) have come.
        if n < 0 or n > len(buf):
            n = len(buf)
        for i in range(n):
            c = self._r.read_byte()
            if c < 0:
                return i
            buf[i] = c
        return n

    def read(self, n=-1):
        b = bytearray(n if n > 0 else 1)
        k = self.readinto(b)
        return bytes(b[:k])

    def _ready(self):
        return self._r._ready()

    def write(self, buf):
        raise OSError(1)


class _Stdout(io.IOBase):
    def __init__(self, repl):
        self._r = repl

    @property
    def buffer(self):
        return self

    def write(self, buf):
        if isinstance(buf, str):
            buf = buf.encode()
        return self._r.tx(memoryview(buf))

    def flush(self):
        pass

    def readinto(self, buf):
        raise OSError(1)


# ---------------------------------------------------------------- sys, micropython
class SysProxy:
    """`sys` as the firmware sees it on an ESP32 build."""

    platform = "esp32"
    maxsize = 2147483647  # 32-bit mp_int_t
    byteorder = "little"

    def __init__(self, repl):
        self.stdin = _Stdin(repl)
        self.stdout = _Stdout(repl)
        self.stderr = self.stdout  # one REPL stream: stderr is stdout on a board
        self.argv = []
        self.path = _sys.path
        self.modules = _sys.modules

    def exit(self, code=0):
        raise SystemExit(code)

    def __getattr__(self, name):
        return getattr(_sys, name)


class MicropythonProxy:
    const = staticmethod(_mp.const)

    def kbd_intr(self, c):
        # py/modmicropython.c mp_micropython_kbd_intr -> mp_hal_set_interrupt_char:
        # one global, for the UART ISR and the USB REPLs alike.
        intr_char[0] = c

    def mem_info(self, *a):
        gc.collect()
        console("stack: (stand-in)\nGC: total: -, used: %d, free: %d"
                % (gc.mem_alloc(), gc.mem_free()))

    def __getattr__(self, name):
        return getattr(_mp, name)


def os_module():
    return _os



def psram_fb(n):
    """A camera frame buffer in the PSRAM arena, as a memoryview of typecode
    'b' (signed), as modcamera.c returns it."""
    a = psram[0]
    if n > a.size - a.used:
        return None
    mv = memoryview(a._buf)[a.used : a.used + n]
    a.used += n
    return mv
