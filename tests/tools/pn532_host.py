"""A host speaking raw bytes to the PN532 simulator over its pty, shared by the simulator's
tests (each adds the calls it needs: expect, thru, command)."""

from __future__ import annotations

import time

from comptoir_tools.simulators.pn532_sim import PtyUart


class SimHost:
    default_timeout = 0.5  # seconds recv waits when not told

    def __init__(self, port: str) -> None:
        self.u = PtyUart(port)

    def send(self, data: bytes) -> None:
        self.u.write(data)

    def recv(self, n: int, timeout: float | None = None) -> bytes:
        """Up to n bytes, waiting at most `timeout` seconds for them."""
        out = b""
        end = time.monotonic() + (self.default_timeout if timeout is None else timeout)
        while len(out) < n and time.monotonic() < end:
            chunk = self.u.read(n - len(out))
            if chunk:
                out += chunk
            else:
                time.sleep(0.0005)
        return out

    def quiet(self, seconds: float) -> bytes:
        time.sleep(seconds)
        return self.u.read() or b""
