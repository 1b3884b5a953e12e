# The reader application: one cooperative loop that services the host link,
# the feature drivers and the watchdog. Buffers are allocated once, here, at
# start-up; nothing in the loop allocates per byte.
import gc
import sys

import board as board_layer

from comptoir_link import frames as F
from comptoir_link.board_side import BoardLink
from comptoir_link.compat import const, ticks_add
from comptoir_link.link import COUNTER_NAMES, UP

FIRMWARE_VERSION = "0.1.0"

_RX_CHUNK = const(512)
_WDT_MS = const(8000)
_IDLE_WAIT_MS = const(10)
# Link counters reported in STATUS, in the order docs/protocol.md gives (names.STATUS_FIELDS).
_STATUS_COUNTERS = ("crc_errors", "malformed_frames", "oversized_frames", "retransmits",
                    "duplicates", "link_lost", "sessions")
# Appended after heap_after_gc and nfc_taps (issue 19): every counter of protocol.md §8.
_STATUS_COUNTERS_2 = ("short_frames", "bad_version", "stale_session", "unknown_type",
                      "bad_ack", "out_of_order", "no_session")
_VERDICT_BACK = const(64)  # a VERDICT answers one of the last 64 objects of its id space
_MAX_CONSECUTIVE_FAULTS = const(20)
# The largest payload a board whose host link is the REPL's UART ("repl": true)
# receives, announced in HELLO (finding 7). The REPL's stdin ring holds 259 bytes
# (ports/esp32/mphalport.c stdin_ringbuf_array[260]) and the ISR drops what does
# not fit while the loop is away (0.3-0.5 s in one PN532 exchange). What the host
# may have in flight then: its window of 2 frames of 96 + 9 bytes (COBS +1, two
# 0x00: 108 bytes each) and three 12-byte control frames (ACK, NAK, HEARTBEAT):
# 252 bytes. The host's largest frame for a board is a VERDICT, 69 bytes.
# docs/boards.md, docs/protocol.md §3.
_REPL_RX_PAYLOAD = const(96)


class Reader:
    def __init__(self, board):
        self.board = board
        self.uart = board.uart("host")
        spec = board.definition.get("uarts", {}).get("host", {})
        baud = spec.get("baud", 115200)
        max_payload = board.definition.get("link", {}).get("max_payload", F.DEFAULT_MAX_PAYLOAD)
        rx_payload = _REPL_RX_PAYLOAD if spec.get("repl") else max_payload
        caps = F.CAP_LED
        if board.pn532_spec() is not None:
            caps |= F.CAP_NFC
        cam = None
        if _camera_wanted(board):
            import cam as cam_layer

            cam = cam_layer.open(board)
            if cam is not None:
                caps |= F.CAP_CAMERA
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
        # Features first, link buffers last: the modules' code is loaded before
        # the big buffers are carved out, which keeps the heap unfragmented.
        self._out = bytearray(max_payload)  # payloads the application builds
        self._out_mv = memoryview(self._out)
        self.nfc = None
        if board.pn532_spec() is not None:
            from nfc_task import NfcTask

            self.nfc = NfcTask(board.pn532_transport(), self._out)
        self.fwd = None
        if cam is not None:
            import cam as cam_layer
            from frame_forwarder import FrameForwarder

            spec = board.definition.get("camera", {})
            # Its own chunk buffer: a frame's chunks are built across loop steps.
            self.fwd = FrameForwarder(cam, max_payload, max_fps=spec.get("max_fps", 5),
                                      baud=baud, decoder=cam_layer.decoder())
        gc.collect()
        self.link = BoardLink(self.uart.write, baud=baud, max_payload=max_payload,
                              rx_payload=rx_payload, hello_items=items,
                              random_bytes=board.random_bytes, clock=board.ticks_ms,
                              pair_key=board.pair_key)
        self.link.on_message = self._on_message
        self.link.on_up = self._on_up
        self.link.on_down = self._on_down
        self._rx = bytearray(_RX_CHUNK)
        self._rx_mv = memoryview(self._rx)
        self.bench = None  # the link benchmark, loaded on the host's first request
        self._status_owed = False
        self._next_obj_id = 1
        self._nfc_used = 0  # NFC object ids used since boot (up to _VERDICT_BACK)
        self._cam_first = -1  # the first camera object id sent since boot
        self._verdict_until = None
        self._uarts = (self.uart,)
        self.min_free = board.free_heap()
        self.heap_after_gc = self.min_free
        self.started = board.ticks_ms()
        self._last_gc = self.started
        # Uptime in seconds and milliseconds, summed from ticks_diff steps: one
        # ticks_diff spans only +-2**29 ms (6.2 days) on an ESP32 (finding 9).
        self._up_at = self.started
        self._up_s = 0
        self._up_ms = 0
        board.output("led_error", 1)

    # -------------------------------------------------------------- link events
    def _on_up(self, info):
        self.board.output("led_error", 0)
        self.board.output("led_ready", 1)
        if self.bench:
            self.bench.cancel()
        if self.nfc:
            self.nfc.on_session()
        if self.fwd:
            self.fwd.abandon()

    def _on_down(self, reason):
        self.board.output("led_ready", 0)
        self.board.output("led_error", 1)
        if self.board.log:
            print("link down:", reason, file=self.board.log)

    def _on_message(self, ftype, payload):
        if ftype == F.BENCH_REQUEST and len(payload) >= 4:
            if self.bench is None:
                from bench_task import BenchTask

                self.bench = BenchTask(self._out)
            self.bench.on_request(payload, self.link.tx_limit)
        elif ftype == F.STATUS_REQUEST:
            self._status_owed = True
        elif ftype == F.CHALLENGE and self.nfc:
            if not self.nfc.on_challenge(payload):
                self._send_error(F.E_BAD_REQUEST, "CHALLENGE of %d bytes" % len(payload))
        elif ftype == F.VERDICT and len(payload) >= 5:
            oid = F.u16(payload[0:2])
            if not self._sent_recently(oid):
                # Never shown: a verdict for an object this board did not send (or long
                # ago) would tell the person at the counter about someone else.
                self._send_error(F.E_BAD_REQUEST, "VERDICT for object %d not sent" % oid)
                return
            if self.fwd:
                self.fwd.on_verdict(oid)
            self._show_verdict(payload[2], payload[5:])
        else:
            self._send_error(F.E_BAD_REQUEST, "unhandled frame type 0x%02x" % ftype)

    def _sent_recently(self, oid):
        # docs/protocol.md §9: one of the last 64 objects this board sent in that id space.
        if oid & 0x8000:
            f = self.fwd
            if f is None or self._cam_first < 0:
                return False
            last = f.object_id if f.object_id >= 0 else f.last_sent_id
            back = (last - oid) & 0x7FFF
            return back < _VERDICT_BACK and back <= ((last - self._cam_first) & 0x7FFF)
        if oid == 0:
            return False
        back = (self._next_obj_id - oid) % 0x7FFF  # NFC ids cycle through 1..0x7FFF
        return 1 <= back <= self._nfc_used

    # -------------------------------------------------------------- feedback
    def _show_verdict(self, verdict, text):
        # What the person at the counter sees and hears, for a few seconds.
        b = self.board
        b.output("led_ready", 0)
        b.output("led_ok", 1 if verdict == F.V_ACCEPTED else 0)
        b.output("led_choose", 1 if verdict == F.V_CHOOSE_BENEFICIARY else 0)
        b.output("led_error", 1 if verdict in (F.V_REFUSED, F.V_ERROR) else 0)
        b.output("buzzer", 1 if verdict == F.V_ACCEPTED else 2)
        b.show(bytes(text).decode())
        # ticks_add, not + 2000: near the 2**30 wrap the sum is no small int on an
        # ESP32 and ticks_diff misreads it (review finding 8).
        self._verdict_until = ticks_add(b.ticks_ms(), 2000)

    def _verdict_done(self):
        b = self.board
        for name in ("led_ok", "led_choose", "led_error", "buzzer"):
            b.output(name, 0)
        b.output("led_ready", 1)
        b.show("")
        self._verdict_until = None

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
        free = self.board.free_heap()
        if free < self.min_free:
            self.min_free = free  # the minimum includes this very moment
        vals = [free, self.min_free,
                (self._uptime() * 1000 + self._up_ms) & 0xFFFFFFFF]
        for name in _STATUS_COUNTERS:
            vals.append(self.link.counters[COUNTER_NAMES.index(name)] & 0xFFFFFFFF)
        vals.append(self.heap_after_gc)
        vals.append(self.nfc.reader.taps if self.nfc else 0)
        for name in _STATUS_COUNTERS_2:
            vals.append(self.link.counters[COUNTER_NAMES.index(name)] & 0xFFFFFFFF)
        i = 0
        for v in vals:
            o[i] = v & 0xFF
            o[i + 1] = (v >> 8) & 0xFF
            o[i + 2] = (v >> 16) & 0xFF
            o[i + 3] = (v >> 24) & 0xFF
            i += 4
        return i

    def _uptime(self):
        """Whole seconds since start (updated here and at every loop step)."""
        now = self.board.ticks_ms()
        d = self.board.ticks_diff(now, self._up_at)
        if d > 0:
            self._up_at = now
            ms = self._up_ms + d
            self._up_s += ms // 1000
            self._up_ms = ms % 1000
        return self._up_s

    def _pump(self):
        link = self.link
        if link.state != UP:
            return
        if self._status_owed and link.can_send():
            link.send(F.STATUS, self._out_mv, self._status_payload())
            self._status_owed = False
        nfc_busy = False
        if self.nfc is not None:
            # NFC first: a tap never waits behind camera frames.
            if self.nfc.step(link, self._next_obj_id):
                # NFC object ids stay below 0x8000; camera frames use the upper half.
                self._next_obj_id = (self._next_obj_id + 1) & 0x7FFF or 1
                if self._nfc_used < _VERDICT_BACK:
                    self._nfc_used += 1
                if self.fwd:
                    self.fwd.abandon()
            nfc_busy = self.nfc.busy
        if nfc_busy:
            return
        if self.fwd is not None:
            self.fwd.step(link)
            if self._cam_first < 0 and self.fwd.last_sent_id >= 0:
                self._cam_first = self.fwd.last_sent_id
        if self.bench is not None:
            self.bench.pump(link)

    # -------------------------------------------------------------- main loop
    def step(self, wait_ms):
        n = self.uart.readinto(self._rx)
        if n:
            self.link.feed(self._rx_mv, n)
        self.link.poll()
        self._pump()
        self._uptime()
        if self._verdict_until is not None and self.board.ticks_diff(
                self.board.ticks_ms(), self._verdict_until) >= 0:
            self._verdict_done()
        free = self.board.free_heap()
        if free < self.min_free:
            self.min_free = free
        if not n and wait_ms and not (self.fwd and self.fwd.busy):
            now = self.board.ticks_ms()
            if self.board.ticks_diff(now, self._last_gc) > 1000 and self.link.idle():
                gc.collect()  # while idle, so a collection never delays a frame
                self.heap_after_gc = self.board.free_heap()
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
                if self.board.log:
                    sys.print_exception(e, self.board.log)
                try:
                    self._send_error(F.E_BAD_REQUEST, "%s: %s" % (type(e).__name__, e))
                except Exception:
                    pass
                if faults >= _MAX_CONSECUTIVE_FAULTS:
                    self.board.reset()


# Feature modules, loaded one at a time with a collection after each: loading
# a module leaves garbage between the pieces of code it keeps, and without the
# collections the heap ends up in crumbs too small for the buffers to come.
_NFC_MODULES = ("pn532.errors", "pn532.frame", "pn532.transport", "pn532.chip",
                "pn532.apdu", "nfc_reader", "nfc_task")


def _load(modules):
    for name in modules:
        __import__(name)
        gc.collect()


_CAMERA_MODULES = ("cam", "frame_forwarder")


def _camera_wanted(board):
    d = board.definition
    return "camera" in d or "camera" in d.get("features", ())


def main(argv):
    b = board_layer.open(argv)
    gc.collect()
    if b.pn532_spec() is not None:
        _load(_NFC_MODULES)
    if _camera_wanted(b):
        _load(_CAMERA_MODULES)
    reader = Reader(b)
    # Everything the board definition configures is built now; the parsed JSON
    # (pins, buses, camera) would only hold heap for the rest of the day.
    b.definition = {"name": b.name}
    gc.collect()
    if b.log:
        print("comptoir reader %s on %s, free heap %d" % (FIRMWARE_VERSION, b.name, b.free_heap()),
              file=b.log)
    reader.run()
