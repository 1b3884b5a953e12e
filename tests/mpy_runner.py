# Runs firmware test modules on the MicroPython unix port.
#   micropython -X heapsize=100K tests/mpy_runner.py tests/firmware/test_x.py [...]
# Each module's functions named test_* are called with no argument; a test
# module may define `MICROPYTHON_SKIP = "reason"` to opt out. Prints one line
# per test and a closing "N passed, N failed" line; exits 1 on any failure.
import gc
import sys

_root = __file__.rsplit("/", 2)[0] if "/" in __file__ else "."
sys.path.insert(0, _root + "/tests/firmware")
sys.path.insert(0, _root + "/firmware")


def run_file(path, counts):
    name = path.rsplit("/", 1)[-1]
    if name.endswith(".py"):
        name = name[:-3]
    mod = __import__(name)
    skip = getattr(mod, "MICROPYTHON_SKIP", None)
    if skip:
        print("SKIP %s: %s" % (name, skip))
        return
    for attr in sorted(dir(mod)):
        if not attr.startswith("test_"):
            continue
        fn = getattr(mod, attr)
        if not callable(fn):
            continue
        gc.collect()
        try:
            fn()
        except Exception as e:  # report every failure, keep going
            counts[1] += 1
            print("FAIL %s.%s: %s: %s" % (name, attr, type(e).__name__, e))
            sys.print_exception(e)
        else:
            counts[0] += 1
            print("PASS %s.%s" % (name, attr))


def main():
    counts = [0, 0]
    for path in sys.argv[1:]:
        run_file(path, counts)
    print("%d passed, %d failed" % (counts[0], counts[1]))
    sys.exit(1 if counts[1] or not counts[0] else 0)


main()
