"""Run every firmware test module under the real MicroPython unix port.

The same modules also run under CPython through pytest's normal collection, so
the shared code (the link protocol, the PN532 codec) is proven on both.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MICROPYTHON = Path(sys.executable).with_name("micropython")
# ESP32 without PSRAM leaves about 100 KB of heap to Python.
HEAP = "100K"
MODULES = sorted((ROOT / "tests" / "firmware").glob("test_*.py"))


@pytest.mark.parametrize("module", MODULES, ids=[m.stem for m in MODULES])
def test_module_passes_on_micropython(module: Path) -> None:
    proc = subprocess.run(
        [str(MICROPYTHON), "-X", f"heapsize={HEAP}", "tests/mpy_runner.py", str(module)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = proc.stdout + proc.stderr
    if "SKIP " in proc.stdout and "passed" in proc.stdout and proc.returncode == 1:
        pytest.skip(out.strip().splitlines()[0])
    assert proc.returncode == 0, out
    m = re.search(r"^(\d+) passed, 0 failed$", proc.stdout, re.M)
    assert m and int(m.group(1)) > 0, out
