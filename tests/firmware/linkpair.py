# A board link and a host link joined by in-memory lines and one fake clock, for
# link tests that run under both CPython and MicroPython.
from comptoir_link import frames as F
from comptoir_link.board_side import BoardLink
from comptoir_link.host_side import HostLink


class Clock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


class Pair:
    def __init__(self, baud=115200, max_payload=1024, window=2, heartbeat_ms=100,
                 board_payload=None, host_payload=None, seed=1, board_rx=0):
        self.clock = Clock()
        self.to_host = []  # chunks written by the board, in flight
        self.to_board = []
        self._rnd = seed
        self.board = BoardLink(self.to_host.append, baud=baud,
                          max_payload=board_payload or max_payload, window=window,
                          rx_payload=board_rx,
                          hello_items={F.T_BOARD_ID: b"\x01\x02\x03\x04",
                                       F.T_BOARD_NAME: b"test-board"},
                          random_bytes=self._random, clock=self.clock)
        self.host = HostLink(self.to_board.append, baud=baud,
                         max_payload=host_payload or max_payload, window=window,
                         heartbeat_ms=heartbeat_ms, clock=self.clock)
        self.board_got = []
        self.host_got = []
        self.events = []
        self.board.on_message = lambda t, p: self.board_got.append((t, bytes(p)))
        self.host.on_message = lambda t, p: self.host_got.append((t, bytes(p)))
        self.board.on_up = lambda info: self.events.append("board up")
        self.host.on_up = lambda info: self.events.append("host up")
        self.board.on_down = lambda why: self.events.append("board down: " + why)
        self.host.on_down = lambda why: self.events.append("host down: " + why)

    def _random(self, n):
        out = bytearray(n)
        for i in range(n):
            self._rnd = (self._rnd * 1103515245 + 12345) & 0x7FFFFFFF
            out[i] = (self._rnd >> 16) & 0xFF
        return bytes(out)

    def deliver(self, to_host_filter=None, to_board_filter=None):
        """Move everything in flight once; filters may rewrite or drop (return b"")."""
        moved = False
        while self.to_host or self.to_board:
            moved = True
            if self.to_host:
                chunk = bytes(self.to_host.pop(0))
                if to_host_filter:
                    chunk = to_host_filter(chunk)
                self.host.feed(chunk)
            if self.to_board:
                chunk = bytes(self.to_board.pop(0))
                if to_board_filter:
                    chunk = to_board_filter(chunk)
                self.board.feed(chunk)
        return moved

    def run(self, ms, step=5, **filters):
        """Advance the clock by ms in steps, running timers and delivering."""
        end = self.clock.t + ms
        while self.clock.t < end:
            self.board.poll()
            self.host.poll()
            self.deliver(**filters)
            self.clock.t += step

    def connect(self):
        self.run(50)
        assert self.board.state == 1 and self.host.state == 1, self.events
