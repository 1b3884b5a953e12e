# Unix backend, for the software twin: the same application runs on the
# MicroPython unix port, and each UART is a pseudo-terminal (or a Unix socket)
# named on the command line:
#   micropython -X heapsize=100K firmware/main.py --uart host=/dev/pts/4 \
#       --uart pn532=/dev/pts/6 --board-file boards/devkitc-pn532-spi.json --state /tmp/b0
# Outputs (LEDs, buzzer) are printed as "OUT name value" lines on stdout, which
# the twin shows and the tests read. `--uart host=stdio` puts the host link on
# the process's own stdin/stdout (as a board whose link is the REPL's UART);
# the OUT lines and messages then go to stderr.
import builtins
import json
import os
import select
import sys
import termios

from board.common import BoardBase


class PtyUart:
    """A pseudo-terminal with machine.UART's read semantics (None when empty)."""

    def __init__(self, path):
        self.path = path
        self._f = builtins.open(path, "r+b")
        fd = self._f.fileno()
        termios.setraw(fd)
        attrs = termios.tcgetattr(fd)
        # Non-blocking reads: VMIN=0, VTIME=0 returns at once with what is there.
        # VMIN and VTIME (Linux c_cc indexes 6 and 5; the unix port's termios
        # module does not name them).
        attrs[6][getattr(termios, "VMIN", 6)] = 0
        attrs[6][getattr(termios, "VTIME", 5)] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)

    def pollable(self):
        return self._f

    def any(self):
        # A pty cannot say how many bytes wait; 1 means "at least one".
        return 1 if self._poll.poll(0) else 0

    def read(self, n=-1):
        if n is None or n < 0:
            n = 256
        b = self._f.read(n)
        return b if b else None

    def readinto(self, buf, n=-1):
        if n is not None and n >= 0 and n < len(buf):
            buf = memoryview(buf)[:n]
        k = self._f.readinto(buf)
        return k if k else None

    def write(self, buf):
        mv = memoryview(buf)
        done = 0
        while done < len(mv):
            k = self._f.write(mv[done:])
            if k is None or k == 0:
                # The pty's buffer is full (nobody reading): wait, as a UART's TX would.
                select.poll().poll(5)
                continue
            done += k
        return done

    def close(self):
        self._f.close()


def open_uart(spec):
    if spec == "stdio":
        # The process's own stdin/stdout: the twin's REPL-UART board. A terminal
        # is made raw (no echo, and 0x03 is data, not SIGINT).
        from board.stdio import StdioUart

        try:
            termios.setraw(0)
        except OSError:
            pass  # a pipe
        return StdioUart()
    if spec.startswith("socket:"):
        from board.unix_socket import SocketUart  # loaded only when used: heap

        return SocketUart(spec[7:])
    return PtyUart(spec)


class _SoftWatchdog:
    """The ESP32 WDT resets the chip when not fed in time; here the process exits
    with status 70, which the twin supervisor treats as a watchdog reset."""

    def __init__(self, board, timeout_ms):
        self._board = board
        self._timeout = timeout_ms
        self._last = board.ticks_ms()

    def feed(self):
        now = self._board.ticks_ms()
        if self._board.ticks_diff(now, self._last) > self._timeout:
            print("WDT reset: not fed for %d ms" % self._board.ticks_diff(now, self._last),
                  file=self._board.log)
            sys.exit(70)
        self._last = now


class UnixBoard(BoardBase):
    def __init__(self, definition, uarts, state_dir, board_id):
        BoardBase.__init__(self, definition.get("name", "twin"), definition, board_id, uarts,
                           state_dir + "/comptoir.json")
        self._outputs = {}
        self._poll = select.poll()
        self._polled = []

    def output(self, name, value):
        if self._outputs.get(name) != value:
            self._outputs[name] = value
            print("OUT %s %s" % (name, value), file=self.log)

    def pn532_spec(self):
        # The twin has no SPI or I2C: whatever bus the board definition names,
        # its PN532 simulator speaks HSU on the UART given as --uart pn532=...
        if "pn532" in self._uarts:
            return {"bus": "hsu", "uart": "pn532"}
        return None

    def show(self, text):
        # The display, when the board has one: the twin prints it.
        if text:
            print("SHOW %s" % text, file=self.log)

    def wait(self, uarts, timeout_ms):
        for u in uarts:
            if u not in self._polled:
                self._poll.register(u.pollable(), select.POLLIN)
                self._polled.append(u)
        # ipoll reports through an iterator and allocates nothing.
        for _ in self._poll.ipoll(timeout_ms):
            break

    def random_bytes(self, n):
        return os.urandom(n)

    def watchdog(self, timeout_ms):
        return _SoftWatchdog(self, timeout_ms)

    def reset(self):
        sys.exit(71)


def _parse(argv):
    opts = {"uart": {}, "baud": {}, "board-file": None, "state": "/tmp", "board-id": None,
            "pair-key": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            print("usage: main.py --uart host=PTY|stdio|socket:PATH [--uart pn532=PTY]"
                  " [--baud ROLE=N] [--board-file F] [--board-id HEX] [--pair-key HEX]"
                  " [--state DIR] [--camera F] [--mpy DIR]  (docs/conformance.md)")
            sys.exit(0)
        if not a.startswith("--") or i + 1 >= len(argv):
            raise ValueError("bad argument %r (expected --option value)" % a)
        key, val = a[2:], argv[i + 1]
        if key == "uart" or key == "baud":
            role, _, v = val.partition("=")
            opts[key][role] = v
        elif key in opts:
            opts[key] = val
        else:
            raise ValueError("unknown option --%s" % key)
        i += 2
    return opts


def open(argv):
    opts = _parse(argv)
    definition = {"name": "twin"}
    if opts["board-file"]:
        with builtins.open(opts["board-file"]) as f:
            definition = json.load(f)
    uarts = {}
    specs = definition.setdefault("uarts", {})
    for role, path in opts["uart"].items():
        uarts[role] = open_uart(path)
        spec = specs.setdefault(role, {})
        if role in opts["baud"]:
            spec["baud"] = int(opts["baud"][role])
        spec.setdefault("baud", 115200)
    bid = opts["board-id"]
    board_id = bytes.fromhex(bid) if bid else os.urandom(8)
    b = UnixBoard(definition, uarts, opts["state"], board_id)
    if opts["uart"].get("host") == "stdio":
        b.log = sys.stderr  # stdout is the link: the OUT lines and messages go here
    if opts["pair-key"]:
        b.pair_key = bytes.fromhex(opts["pair-key"])
    return b
