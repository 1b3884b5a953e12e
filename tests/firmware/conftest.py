# Firmware tests are plain MicroPython-compatible modules: make the firmware tree
# and the helpers importable under CPython the same way mpy_runner does on MicroPython.
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for p in (_HERE.parents[1] / "firmware", _HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
