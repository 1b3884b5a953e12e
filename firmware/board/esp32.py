# ESP32 backend: machine.UART, Pin, WDT, os.urandom. The board definition
# (boards/<name>.json, deployed as /board.json) says which pins do what.
import builtins
import json
import os
import select

import machine
from micropython import const

from board.common import BoardBase

# After a reset, how long the board listens on the REPL for the way back to it:
# `comptoir flash` (and a person at a terminal) resets the board and sends Ctrl-C
# every 50 ms (docs/flashing.md). main.py has switched the interrupt character
# off already (a host byte 0x03 must never stop the firmware: review findings 3,
# 4), so the window reads the REPL's stdin itself and gives the REPL back after
# _ESCAPE_RUN Ctrl-C bytes each alone on the line (_QUIET_MS of silence before
# and after): a host's frames are bursts of bytes, never lone 0x03 bytes.
_ESCAPE_MS = const(1500)
_HOST_RXBUF = const(8192)
_RXBUF = const(1024)
_TXBUF = const(512)
_ESCAPE_RUN = const(3)
_QUIET_MS = const(10)


class _Output:
    def __init__(self, pin_no, active_low):
        self._pin = machine.Pin(pin_no, machine.Pin.OUT)
        self._low = active_low
        self.value(0)

    def value(self, v):
        self._pin.value((not v) if self._low else bool(v))


class Esp32Board(BoardBase):
    def __init__(self, definition, provisioning):
        uarts = {}
        repl = False
        for role, u in definition.get("uarts", {}).items():
            if u.get("repl"):
                uarts[role] = _repl_uart(u)
                repl = True
                continue
            # Always pass tx and rx: UART1's default pins are the flash/PSRAM ones.
            # The rings come from the IDF heap in internal RAM (uart_driver_install),
            # not the Python heap, beside the camera's DMA buffers: 8 kB each keep a
            # 4 kB host frame from blocking the main loop; a PN532's frames are
            # <= 275 bytes, so 1 kB / 512 B (review finding 10).
            big = role == "host"
            uarts[role] = machine.UART(
                u["id"], baudrate=u["baud"], tx=u["tx"], rx=u["rx"],
                rxbuf=u.get("rxbuf", _HOST_RXBUF if big else _RXBUF),
                txbuf=u.get("txbuf", _HOST_RXBUF if big else _TXBUF),
                timeout=0, timeout_char=u.get("timeout_char", 2),
            )
        bid = provisioning.get("board_id", "")
        BoardBase.__init__(self, definition["name"], definition,
                           bytes.fromhex(bid) if bid else machine.unique_id(), uarts,
                           "/comptoir.json")
        if repl:
            self.log = None  # stdout is the host link: the firmware prints nothing
            # ESP-IDF logs errors (level ERROR by default) on UART0, the host link
            # here: none (modesp.c esp_osdebug: esp_log_level_set("*", 0); finding 12).
            import esp

            esp.osdebug(0, 0)
        key = provisioning.get("pair_key")
        if key:
            self.pair_key = bytes.fromhex(key)
        self._outputs = {}
        for name, o in definition.get("outputs", {}).items():
            self._outputs[name] = _Output(o["pin"], o.get("active_low", False))
        self._poll = select.poll()
        self._polled = []

    def output(self, name, value):
        o = self._outputs.get(name)
        if o is not None:
            o.value(value)

    def _pn532_bus(self, spec):
        from pn532.transport import I2cTransport, SpiTransport

        if spec["bus"] == "spi":
            s = spec["spi"]
            # Mode 0; the ESP32's SPI shifts LSB first itself (firstbit), so the
            # driver need not reverse every byte in Python.
            spi = machine.SPI(s["id"], baudrate=s.get("baudrate", 1000000), polarity=0,
                              phase=0, firstbit=machine.SPI.LSB, sck=machine.Pin(s["sck"]),
                              mosi=machine.Pin(s["mosi"]), miso=machine.Pin(s["miso"]))
            cs = machine.Pin(s["cs"], machine.Pin.OUT, value=1)
            return SpiTransport(spi, cs, lsb_first=True)
        if spec["bus"] == "i2c":
            i = spec["i2c"]
            # `timeout` (us) is the clock-stretch limit with the legacy IDF driver
            # (the PN532 stretches ~440 us) but the whole transfer's limit, in ms,
            # with the new one (MicroPython on ESP-IDF >= 5.5.2, machine_i2c.c;
            # review finding 6): allow twice a 277-byte read at the bus rate.
            freq = i.get("freq", 100000)
            whole = 2 * 277 * 9 * 1000000 // freq
            bus = machine.I2C(i["id"], scl=machine.Pin(i["scl"]), sda=machine.Pin(i["sda"]),
                              freq=freq, timeout=max(i.get("timeout_us", 2000), whole))
            return I2cTransport(bus)
        return BoardBase._pn532_bus(self, spec)

    def show(self, text):
        # A display driver (board definition "display") is not wired yet: the
        # LEDs and the buzzer carry the verdict.
        pass

    def wait(self, uarts, timeout_ms):
        for u in uarts:
            if u not in self._polled:
                p = getattr(u, "pollable", None)  # the stdio link polls sys.stdin
                self._poll.register(p() if p else u, select.POLLIN)
                self._polled.append(u)
        for _ in self._poll.ipoll(timeout_ms):  # ipoll allocates nothing
            break

    def random_bytes(self, n):
        return os.urandom(n)

    def watchdog(self, timeout_ms):
        # The ESP32 WDT cannot be stopped and takes at least 1 s.
        return machine.WDT(timeout=max(1000, timeout_ms))

    def reset(self):
        machine.reset()


def _repl_uart(u):
    """The host link on the REPL's UART (UART0 via the USB bridge). The REPL's
    own handler keeps UART0: the bytes arrive in its stdin ring buffer (and the
    interrupt character, off since main.py, would raise KeyboardInterrupt), so
    the link goes through sys.stdin.buffer / sys.stdout.buffer.

    The line stays at the image's REPL rate (115 200 unless the image was built
    with another MICROPY_HW_UART_REPL_BAUD; the board file says which, as
    "image_baud"): machine.UART(0, baudrate=...) raises OSError on the REPL UART
    of every port >= 1.23, after switching the rate (review finding 1), and the
    REPL's stdout is paced by the FreeRTOS tick, 128 bytes a tick (~12.8 kB/s),
    whatever the rate (finding 5): a faster line would buy nothing."""
    from board.stdio import StdioUart

    return StdioUart()


def escape_window(ms=_ESCAPE_MS):
    """The way back to the REPL (docs/flashing.md): for `ms` after start, read the
    REPL's stdin; _ESCAPE_RUN lone Ctrl-C bytes in a row end main.py with
    KeyboardInterrupt, Ctrl-C on again. Any other byte is dropped (a host's
    frame: it will be sent again once the link runs)."""
    import sys
    import time

    import micropython

    p = select.poll()
    p.register(sys.stdin, select.POLLIN)
    one = bytearray(1)
    src = sys.stdin.buffer
    end = time.ticks_add(time.ticks_ms(), ms)
    last = time.ticks_add(time.ticks_ms(), -_QUIET_MS)  # when the last byte came
    run = 0
    while time.ticks_diff(end, time.ticks_ms()) > 0:
        got = False
        for _ in p.ipoll(_QUIET_MS):
            got = True
            break
        if not got:
            continue
        src.readinto(one)
        now = time.ticks_ms()
        lone = one[0] == 3 and time.ticks_diff(now, last) >= _QUIET_MS
        last = now
        if lone:
            for _ in p.ipoll(_QUIET_MS):  # silence after it too
                lone = False
                break
        run = run + 1 if lone else 0
        if run >= _ESCAPE_RUN:
            micropython.kbd_intr(3)
            raise KeyboardInterrupt


def _load_json(path, default):
    try:
        with builtins.open(path) as f:
            return json.load(f)
    except OSError:
        return default


def open(argv=None):
    """The board as deployed: /board.json (definition), /provision.json (identity)."""
    escape_window()
    definition = _load_json("/board.json", None)
    if definition is None:
        raise OSError("no /board.json on the board: flash it with `comptoir flash`")
    return Esp32Board(definition, _load_json("/provision.json", {}))
