# Runs firmware test modules on the MicroPython unix port.
#   micropython -X heapsize=100K tests/mpy_runner.py DIR [DIR ...] -- test_mod [test_mod ...]
# DIRs go on sys.path (the compiled firmware tree and the compiled tests, as a
# board would hold them). Each module's functions named test_* are called with
# no argument; a module may define MICROPYTHON_SKIP = "reason" to opt out.
# Prints a line per test and a closing "N passed, N failed" line; exits 1 on any
# failure or when nothing ran.
import gc
import sys


def run_module(name, counts):
    mod = __import__(name)
    skip = getattr(mod, "MICROPYTHON_SKIP", None)
    if skip:
        print("SKIP %s: %s" % (name, skip))
        counts[2] += 1
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
            print("PASS %s.%s (free heap %d)" % (name, attr, gc.mem_free()))


def main():
    args = sys.argv[1:]
    split = args.index("--")
    for d in reversed(args[:split]):
        sys.path.insert(0, d)
    counts = [0, 0, 0]
    for name in args[split + 1 :]:
        run_module(name, counts)
    print("%d passed, %d failed" % (counts[0], counts[1]))
    sys.exit(1 if counts[1] or not (counts[0] or counts[2]) else 0)


main()
