# `select` of the ESP32 port for the stand-in's streams (machine.UART,
# sys.stdin): extmod/modselect.c over MP_STREAM_POLL; a wait with a timeout
# goes in steps of one tick (MICROPY_EVENT_POLL_HOOK, ports/esp32/mpconfigport.h),
# servicing the stand-in's interrupts. ipoll allocates nothing.
import _port

POLLIN = 1
POLLOUT = 4
POLLERR = 8
POLLHUP = 16


class poll:
    def __init__(self):
        self._objs = []
        self._hits = []
        self._one = [None]

    def register(self, obj, eventmask=POLLIN | POLLOUT):
        for i in range(len(self._objs)):
            if self._objs[i] is obj:
                return
        if not hasattr(obj, "_ready"):
            raise TypeError("stand-in poll: not a stand-in stream")
        self._objs.append(obj)
        self._hits.append((obj, POLLIN))

    def unregister(self, obj):
        for i in range(len(self._objs)):
            if self._objs[i] is obj:
                del self._objs[i]
                del self._hits[i]
                return

    def modify(self, obj, eventmask):
        pass

    def _first(self):
        objs = self._objs
        for i in range(len(objs)):
            if objs[i]._ready():
                return i
        return -1

    def ipoll(self, timeout=-1, flags=0):
        end = _port.now_ms() + timeout if timeout >= 0 else -1
        while True:
            _port.service()
            i = self._first()
            if i >= 0:
                self._one[0] = self._hits[i]
                return self._one
            left = end - _port.now_ms() if end >= 0 else 10
            if left <= 0:
                return ()
            _port.wait(left if left < 10 else 10)

    def poll(self, timeout=-1):
        return list(self.ipoll(timeout))


def select(r, w, x, timeout=None):
    p = poll()
    for o in r:
        p.register(o)
    return [o for o, _ in p.poll(-1 if timeout is None else int(timeout * 1000))], [], []
