# Comptoir reader firmware entry point. On a board the MicroPython boot sequence
# runs this file; for the software twin the unix port runs it with the board's
# wiring on the command line:
#   micropython -X heapsize=100K firmware/main.py --uart host=/dev/pts/4 ...
# A compiled tree (.mpy, as deployed on a board) is put first with --mpy DIR.
import micropython

# First thing: Ctrl-C off. On the ESP32-CAM and the DevKitC the host link is the
# REPL's UART, on the Freenove S3 the host's RX pin is UART0's (GPIO44): a 0x03
# from the host would raise KeyboardInterrupt in the REPL's ISR and park the
# board at its REPL (review findings 3 and 4). The way back to the REPL is the
# board layer's escape window (board/esp32.py): three lone Ctrl-C.
micropython.kbd_intr(-1)

import sys  # noqa: E402

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
