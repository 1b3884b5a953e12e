# ESP32 backend: machine.UART, Pin, WDT, os.urandom. The board definition
# (boards/<name>.json, deployed as /board.json) says which pins do what.
import builtins
import json
import os
import select

import machine
from micropython import const

from board.common import BoardBase

# After a reset, how long Ctrl-C still interrupts main.py on a board whose host
# link is the REPL's UART: the way in for mpremote and `comptoir flash`, which
# resets the board and sends Ctrl-C (docs/flashing.md). Then the interrupt
# character is switched off: 0x03 is ordinary data in the link's frames.
_ESCAPE_MS = const(1500)


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
            # Large ring buffers (outside the Python heap) keep a 4 kB frame from
            # blocking the main loop while it drains at the line rate.
            uarts[role] = machine.UART(
                u["id"], baudrate=u["baud"], tx=u["tx"], rx=u["rx"],
                rxbuf=u.get("rxbuf", 8192), txbuf=u.get("txbuf", 8192),
                timeout=0, timeout_char=u.get("timeout_char", 2),
            )
        bid = provisioning.get("board_id", "")
        BoardBase.__init__(self, definition["name"], definition,
                           bytes.fromhex(bid) if bid else machine.unique_id(), uarts,
                           "/comptoir.json")
        if repl:
            self.log = None  # stdout is the host link: the firmware prints nothing
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
            # The PN532 stretches the clock ~440 us: allow well over that.
            bus = machine.I2C(i["id"], scl=machine.Pin(i["scl"]), sda=machine.Pin(i["sda"]),
                              freq=i.get("freq", 100000), timeout=i.get("timeout_us", 2000))
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
    own handler keeps UART0: the bytes arrive in its stdin ring buffer and the
    interrupt character raises KeyboardInterrupt, so the link goes through
    sys.stdin.buffer / sys.stdout.buffer with the interrupt character off."""
    import time

    import micropython

    from board.stdio import StdioUart

    time.sleep_ms(_ESCAPE_MS)  # Ctrl-C here stops main.py: the REPL is back
    micropython.kbd_intr(-1)
    if u["baud"] != 115200:
        # Only the line rate: the port does not reinstall the REPL UART's driver
        # (the ROM, the boot log and the REPL at reset run at 115 200).
        machine.UART(u["id"], baudrate=u["baud"])
    return StdioUart()


def _load_json(path, default):
    try:
        with builtins.open(path) as f:
            return json.load(f)
    except OSError:
        return default


def open(argv=None):
    """The board as deployed: /board.json (definition), /provision.json (identity)."""
    definition = _load_json("/board.json", None)
    if definition is None:
        raise OSError("no /board.json on the board: flash it with `comptoir flash`")
    return Esp32Board(definition, _load_json("/provision.json", {}))
