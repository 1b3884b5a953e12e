# A Unix-domain stream socket as a UART for the twin (--uart ROLE=socket:PATH),
# with machine.UART's read semantics. Its own module: a board that does not use
# it does not pay its heap.
import select


class SocketUart:
    """A Unix-domain stream socket with the same read semantics."""

    def __init__(self, path):
        import socket

        self.path = path
        self._s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The unix port's connect() takes a raw sockaddr: sockaddr_un is the
        # family (native u16) then the NUL-terminated path.
        import struct

        self._s.connect(struct.pack("H", socket.AF_UNIX) + path.encode() + b"\0")
        self._s.setblocking(False)
        self._poll = select.poll()
        self._poll.register(self._s, select.POLLIN)

    def pollable(self):
        return self._s

    def any(self):
        return 1 if self._poll.poll(0) else 0

    def read(self, n=-1):
        try:
            b = self._s.recv(256 if n is None or n < 0 else n)
        except OSError:
            return None
        return b if b else None

    def readinto(self, buf, n=-1):
        b = self.read(len(buf) if n is None or n < 0 else n)
        if not b:
            return None
        buf[: len(b)] = b
        return len(b)

    def write(self, buf):
        self._s.setblocking(True)
        try:
            return self._s.write(buf)
        finally:
            self._s.setblocking(False)

    def close(self):
        self._s.close()
