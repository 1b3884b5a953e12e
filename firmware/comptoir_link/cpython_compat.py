# CPython stand-ins for MicroPython's const() and ticks functions. Never
# imported on a board (see compat.py); kept apart so the ESP32 type-check sees
# only what the board runs.
import time


def const(x):
    return x


def ticks_ms():
    # A monotonic millisecond clock: no wrap-around, so diff and add are plain.
    return int(time.monotonic() * 1000)


def ticks_diff(a, b):
    return a - b


def ticks_add(a, b):
    return a + b


def sleep_ms(ms):
    time.sleep(ms / 1000)
