# The host link over MicroPython's own stdin/stdout, for a board whose host
# link is the REPL's UART (UART0 through the USB bridge: "repl": true in the
# board file) and, on the twin, `--uart host=stdio`. On the ESP32 the REPL keeps
# its own handler on UART0: received bytes land in the REPL's stdin ring buffer
# (machine.UART(0).read() would not see them) and the interrupt character
# raises KeyboardInterrupt unless micropython.kbd_intr(-1) (board/esp32.py).
# Its own module: a board that does not use it does not pay its heap.
import select
import sys


class StdioUart:
    """sys.stdin.buffer / sys.stdout.buffer with what the link uses of a
    machine.UART: readinto (None when nothing is waiting) and write. Nothing
    else may write to stdout meanwhile."""

    def __init__(self):
        self._in = sys.stdin.buffer
        self.write = sys.stdout.buffer.write  # blocks until written: no TX ring of ours
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._one = bytearray(1)

    def pollable(self):
        return sys.stdin

    def readinto(self, buf):
        # The ESP32's sys.stdin.buffer.readinto(b) blocks until len(b) bytes have
        # come, and stdin cannot say how many wait: take one byte at a time while
        # poll says one is there (ipoll allocates nothing; poll would).
        one = self._one
        i = 0
        while i < len(buf):
            for _ in self._poll.ipoll(0):
                break
            else:
                break  # nothing more waiting
            if not self._in.readinto(one):
                # End of file: only on the unix port, when the host closed the
                # link's pipe. A board's UART never ends; the twin's process does.
                sys.exit(0)
            buf[i] = one[0]
            i += 1
        return i or None
