"""Type-check the firmware against the ESP32 MicroPython stubs (`make typecheck`).

The stubs (micropython-esp32-stubs and the micropython-stdlib-stubs it needs)
describe what the board really offers: machine.UART's signature, time.ticks_ms,
no zlib. They are gathered into one folder that replaces mypy's own typeshed,
so CPython's standard library cannot hide a call the ESP32 does not have.
mypy checks for platform "esp32"; CPython-only shims are outside the check, as
they are outside the ESP32 build.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
STUB_DISTS = ("micropython-esp32-stubs", "micropython-stdlib-stubs")
UNIX_ONLY = {"comptoir_link/cpython_compat.py"}


def gather_stubs(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for dist_name in STUB_DISTS:
        dist = metadata.distribution(dist_name)
        for f in dist.files or ():
            if f.suffix != ".pyi" and f.name != "VERSIONS":
                continue
            src = Path(str(dist.locate_file(f)))
            target = dest / str(f)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                target.unlink()
            target.symlink_to(src)
    return dest


def mypy_config(stubs: Path, dest: Path) -> Path:
    """Errors inside the third-party stubs are theirs, not ours; CPython-only
    modules are not followed (the board never imports them)."""
    modules = sorted({p.relative_to(stubs).parts[0].removesuffix(".pyi")
                      for p in stubs.iterdir() if p.name not in ("stdlib", "VERSIONS")}
                     | {p.stem for p in (stubs / "stdlib").glob("*.pyi")})
    lines = ["[mypy]", "check_untyped_defs = True", ""]
    for m in modules:
        lines += [f"[mypy-{m}.*]", "ignore_errors = True", f"[mypy-{m}]", "ignore_errors = True"]
    for m in UNIX_ONLY:
        mod = m.removesuffix(".py").replace("/", ".")
        lines += [f"[mypy-{mod}]", "follow_imports = skip"]
    dest.write_text("\n".join(lines) + "\n")
    return dest


def firmware_files() -> list[str]:
    fw = ROOT / "firmware"
    return sorted(p.relative_to(fw).as_posix() for p in fw.rglob("*.py")
                  if p.relative_to(fw).as_posix() not in UNIX_ONLY)


def main(argv: list[str] | None = None) -> int:
    stubs = gather_stubs(ROOT / "build" / "esp32-stubs")
    config = mypy_config(stubs, ROOT / "build" / "mypy-esp32.ini")
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(config),
           "--custom-typeshed-dir", str(stubs),
           "--no-site-packages", "--platform", "esp32", "--python-version", "3.11",
           "--cache-dir", str(ROOT / "build" / "mypy-esp32-cache"),
           *(argv or []), *firmware_files()]
    env = dict(os.environ, MYPYPATH=str(stubs))
    print("typecheck: firmware against", ", ".join(STUB_DISTS), flush=True)
    return subprocess.run(cmd, cwd=ROOT / "firmware", env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
