"""Run every firmware test module under the real MicroPython unix port.

The same modules also run under CPython through pytest's normal collection, so
the shared code (the link protocol, the PN532 codec) is proven on both. Here
they run as a board runs them: compiled to .mpy by mpy-cross, in a heap the size
of an ESP32's without PSRAM.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from comptoir_tools.firmware.build import compile_tree

ROOT = Path(__file__).resolve().parents[1]
MICROPYTHON = Path(sys.executable).with_name("micropython")
HEAP = "100K"
TESTS = ROOT / "tests" / "firmware"
MODULES = sorted(TESTS.glob("test_*.py"))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("mpy")
    fw, tests = base / "firmware", base / "tests"
    compile_tree(ROOT / "firmware", fw)
    compile_tree(TESTS, tests)
    return fw, tests


@pytest.mark.parametrize("module", MODULES, ids=[m.stem for m in MODULES])
def test_module_passes_on_micropython(module: Path, compiled: tuple[Path, Path]) -> None:
    fw, tests = compiled
    proc = subprocess.run(
        [str(MICROPYTHON), "-X", f"heapsize={HEAP}", str(ROOT / "tests" / "mpy_runner.py"),
         str(fw), str(tests), "--", module.stem],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = proc.stdout + proc.stderr
    if proc.returncode == 0 and proc.stdout.startswith("SKIP "):
        pytest.skip(proc.stdout.splitlines()[0])
    assert proc.returncode == 0, out
    m = re.search(r"^(\d+) passed, 0 failed$", proc.stdout, re.M)
    assert m and int(m.group(1)) > 0, out
