# The reader application: one cooperative loop that services the host link,
# the feature drivers and the watchdog. Buffers are allocated once, here, at
# start-up; nothing in the loop allocates per byte.
import gc
import sys

import board as board_layer

from comptoir_link import frames as F
from comptoir_link.compat import const
from comptoir_link.link import COUNTER_NAMES, UP, Link

FIRMWARE_VERSION = "0.1.0"

_RX_CHUNK = const(512)
_WDT_MS = const(8000)
_IDLE_WAIT_MS = const(10)
_STATUS_COUNTERS = F.STATUS_FIELDS[3:]
_MAX_CONSECUTIVE_FAULTS = const(20)


class Reader:
    def __init__(self, board):
        self.board = board
        self.uart = board.uart("host")
        spec = board.definition.get("uarts", {}).get("host", {})
        baud = spec.get("baud", 115200)
        max_payload = board.definition.get("link", {}).get("max_payload", F.DEFAULT_MAX_PAYLOAD)
        caps = F.CAP_LED
        for feature, bit in (("nfc", F.CAP_NFC), ("camera", F.CAP_CAMERA),
                             ("buzzer", F.CAP_BUZZER), ("display", F.CAP_DISPLAY)):
            if feature in board.definition.get("features", ()):
                caps |= bit
        items = {
            F.T_BOARD_ID: board.board_id,
            F.T_FIRMWARE: FIRMWARE_VERSION.encode(),
            F.T_BOARD_NAME: board.name.encode(),
            F.T_CAPS: F.u16_bytes(caps),
        }
        self.link = Link(self.uart.write, True, baud=baud, max_payload=max_payload,
                         hello_items=items, random_bytes=board.random_bytes,
                         clock=board.ticks_ms, pair_key=board.pair_key)
        self.link.on_message = self._on_message
        self.link.on_up = self._on_up
        self.link.on_down = self._on_down
        self._rx = bytearray(_RX_CHUNK)
        self._rx_mv = memoryview(self._rx)
        self._out = bytearray(max_payload)  # payloads the application builds
        self._out_mv = memoryview(self._out)
        self._bench_left = 0
        self._bench_size = 0
        self._bench_index = 0
        self._bench_done_owed = False
        self._status_owed = False
        self._uarts = (self.uart,)
        self.min_free = board.free_heap()
        self.started = board.ticks_ms()
        self._last_gc = self.started
        board.output("led_error", 1)

    # -------------------------------------------------------------- link events
    def _on_up(self, info):
        self.board.output("led_error", 0)
        self.board.output("led_ready", 1)
        self._bench_left = 0

    def _on_down(self, reason):
        self.board.output("led_ready", 0)
        self.board.output("led_error", 1)
        print("link down:", reason)

    def _on_message(self, ftype, payload):
        if ftype == F.BENCH_REQUEST and len(payload) >= 4:
            self._bench_left = F.u16(payload[0:2])
            self._bench_size = max(2, min(F.u16(payload[2:4]), self.link.tx_limit))
            self._bench_index = 0
            for i in range(2, self._bench_size):
                self._out[i] = (i * 7 + 1) & 0xFF
        elif ftype == F.STATUS_REQUEST:
            self._status_owed = True
        else:
            self._send_error(F.E_BAD_REQUEST, "unhandled frame type 0x%02x" % ftype)

    # -------------------------------------------------------------- outgoing
    def _send_error(self, code, text):
        if self.link.can_send():
            t = text.encode()
            n = min(len(t), self.link.tx_limit - 2)
            self._out[0] = code & 0xFF
            self._out[1] = code >> 8
            self._out[2 : 2 + n] = t[:n]
            self.link.send(F.ERROR, self._out_mv, 2 + n)

    def _status_payload(self):
        o = self._out
        vals = [self.board.free_heap(), self.min_free,
                self.board.ticks_diff(self.board.ticks_ms(), self.started) & 0xFFFFFFFF]
        for name in _STATUS_COUNTERS:
            vals.append(self.link.counters[COUNTER_NAMES.index(name)] & 0xFFFFFFFF)
        i = 0
        for v in vals:
            o[i] = v & 0xFF
            o[i + 1] = (v >> 8) & 0xFF
            o[i + 2] = (v >> 16) & 0xFF
            o[i + 3] = (v >> 24) & 0xFF
            i += 4
        return i

    def _pump(self):
        link = self.link
        if link.state != UP:
            return
        if self._status_owed and link.can_send():
            link.send(F.STATUS, self._out_mv, self._status_payload())
            self._status_owed = False
        while self._bench_left and link.can_send():
            k = self._bench_index
            self._out[0] = k & 0xFF
            self._out[1] = (k >> 8) & 0xFF
            link.send(F.BENCH_DATA, self._out_mv, self._bench_size)
            self._bench_index += 1
            self._bench_left -= 1
            if not self._bench_left:
                self._bench_done_owed = True
        if self._bench_done_owed and link.can_send():
            link.send(F.BENCH_DONE, F.u16_bytes(self._bench_index))
            self._bench_done_owed = False

    # -------------------------------------------------------------- main loop
    def step(self, wait_ms):
        n = self.uart.readinto(self._rx)
        if n:
            self.link.feed(self._rx_mv, n)
        self.link.poll()
        self._pump()
        free = self.board.free_heap()
        if free < self.min_free:
            self.min_free = free
        if not n and wait_ms:
            now = self.board.ticks_ms()
            if self.board.ticks_diff(now, self._last_gc) > 1000 and self.link.idle():
                gc.collect()  # while idle, so a collection never delays a frame
                self._last_gc = now
            self.board.wait(self._uarts, wait_ms)

    def run(self):
        wdt = self.board.watchdog(_WDT_MS)
        faults = 0
        while True:
            wdt.feed()
            try:
                self.step(_IDLE_WAIT_MS)
                faults = 0
            except Exception as e:  # keep serving: report, count, reset if it persists
                faults += 1
                sys.print_exception(e)
                try:
                    self._send_error(F.E_BAD_REQUEST, "%s: %s" % (type(e).__name__, e))
                except Exception:
                    pass
                if faults >= _MAX_CONSECUTIVE_FAULTS:
                    self.board.reset()


def main(argv):
    b = board_layer.open(argv)
    gc.collect()
    reader = Reader(b)
    print("comptoir reader %s on %s, free heap %d" % (FIRMWARE_VERSION, b.name, b.free_heap()))
    reader.run()
