# CPython stand-in for MicroPython's time.sleep_ms (tests and tools run the
# driver on CPython). Never imported on a board.
import time


def sleep_ms(ms):
    time.sleep(ms / 1000)
