# The few things MicroPython and CPython spell differently, in one place, so the
# rest of the shared code is written once. Nothing here allocates per call.
from binascii import crc32  # noqa: F401  (both; MicroPython's equals zlib.crc32)

try:
    from time import ticks_add, ticks_diff, ticks_ms  # noqa: F401

    from micropython import const  # noqa: F401  (MicroPython: folded at compile time)
except ImportError:  # CPython (the host): same names, no wrap-around
    from comptoir_link.cpython_compat import const, ticks_add, ticks_diff, ticks_ms  # type: ignore  # noqa: E501, F401
