# Tiny assertion helpers that run unchanged under CPython (pytest) and the
# MicroPython unix port (tests/mpy_runner.py), so firmware tests exist once.


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail if it raised nothing."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("expected %s from %r" % (exc_type.__name__, fn))


def hexb(s):
    """b'..' from a hex string with spaces, as frames are printed in manuals."""
    return bytes.fromhex(s.replace(" ", ""))
