# The few things MicroPython and CPython spell differently, in one place, so the
# rest of the shared code is written once. Nothing here allocates per call.
try:
    from micropython import const  # noqa: F401  (MicroPython: folded at compile time)
except ImportError:  # CPython

    def const(x):
        return x


try:
    from time import ticks_add, ticks_diff, ticks_ms  # noqa: F401  (MicroPython)
except ImportError:  # CPython: a monotonic millisecond clock has no wrap-around
    import time as _time

    def ticks_ms():
        return int(_time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b


try:
    from binascii import crc32  # noqa: F401  (both; MicroPython's equals zlib.crc32)
except ImportError:  # pragma: no cover  (a CPython without binascii does not exist)
    from zlib import crc32  # noqa: F401
