# Comptoir reader firmware entry point. On a board the MicroPython boot sequence
# runs this file; for the software twin the unix port runs it with the board's
# wiring on the command line:
#   micropython -X heapsize=100K firmware/main.py --uart host=/dev/pts/4 ...
# A compiled tree (.mpy, as deployed on a board) is put first with --mpy DIR.
import sys

_argv = sys.argv[1:]
if "--mpy" in _argv:
    _i = _argv.index("--mpy")
    sys.path.insert(0, _argv[_i + 1])
    del _argv[_i : _i + 2]

try:
    import app  # noqa: E402
except MemoryError:
    # Compiling the firmware from source takes more heap than a board has: a
    # board (and the twin) runs the .mpy tree that `comptoir firmware-build` makes.
    print("not enough heap to compile the firmware from source; run build/firmware/main.py")
    sys.exit(1)

app.main(_argv)
