# `time` of the ESP32 port: ticks wrap at 2**30 (a 32-bit port's small ints,
# py/mpconfig.h MICROPY_PY_TIME_TICKS_PERIOD), sleeps service the stand-in's
# interrupts. The rest is the unix port's.
import sys

import _port

_p = sys.path
sys.path = ()
try:
    from time import gmtime, localtime, mktime, time, time_ns  # noqa: F401
finally:
    sys.path = _p
    del _p

ticks_ms = _port.ticks_ms
ticks_us = _port.ticks_us
ticks_cpu = _port.ticks_cpu
ticks_diff = _port.ticks_diff
ticks_add = _port.ticks_add
sleep_ms = _port.sleep_ms


def sleep_us(us):
    _port.sleep_ms((us + 999) // 1000)


def sleep(s):
    _port.sleep_ms(int(s * 1000))
