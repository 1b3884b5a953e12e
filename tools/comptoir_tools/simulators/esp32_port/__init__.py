"""The ESP32 port stand-in: what the shipped firmware's board layer
(`firmware/board/esp32.py`, `firmware/cam/esp32.py`) runs on in the twin.

`port/` holds MicroPython modules (`machine`, `camera`, `esp`, `esp32`, `time`,
`select`, and proxies of `sys` and `micropython`) that `port/launch.py` puts in
`sys.modules` before it runs the deployed `main.py` on the MicroPython unix port.
They follow the ESP32 port's C sources where the easy reading differs (each
behaviour names its source file, function and versions): the REPL UART's
260-byte stdin ring and Ctrl-C in its ISR, its tick-paced stdout, OSError from
`machine.UART(0, baudrate=…)`, 2**30 ticks, uint16 UART buffer sizes, the I2C
timeout of the new IDF driver, the camera driver's signed frame views and its
ROM prints. Nothing here is deployed: it sits *below* the firmware, in the place
of the chip and MicroPython's C code.

This module (CPython) builds a board's filesystem and the launch command.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PORT_DIR = Path(__file__).resolve().parent / "port"
LAUNCH = PORT_DIR / "launch.py"
# What `-X heapsize` must hold beyond the firmware's own heap: the stand-in's
# modules (compiled from source at start) and its working objects.
STANDIN_HEAP = 160 * 1024
# Interpreter start-up objects in a fresh heap: `-X heapsize=100K` leaves
# 100 160 bytes free at main.py's first line (measured, unix port 1.29-preview).
_START_COST = 102400 - 100160
# The IDF heap in internal RAM the stand-in lends to UART rings (an assumption,
# not a measurement: `make hil` prints esp32.idf_heap_info on a real board).
INTERNAL_HEAP = 64 * 1024
# PSRAM frame buffers: two VGA gray frames.
PSRAM_FBS = 2 * 640 * 480


def parse_heap(heap: str) -> int:
    h = heap.strip().upper()
    mult = {"K": 1024, "M": 1024 * 1024}.get(h[-1:], 1)
    return int(h.rstrip("KM")) * mult


def deploy(flash: Path, firmware_dir: Path, definition: dict[str, Any], *, board_id: str,
           pair_key: bytes | None) -> Path:
    """The board's filesystem as `comptoir flash` leaves it: the compiled tree
    (linked), /board.json, /provision.json. Settings the firmware saved survive."""
    flash.mkdir(parents=True, exist_ok=True)
    for entry in Path(firmware_dir).iterdir():
        link = flash / entry.name
        if link.is_symlink() or link.exists():
            if link.is_symlink() and os.readlink(link) == str(entry.resolve()):
                continue
            if link.is_symlink() or link.is_file():
                link.unlink()
        link.symlink_to(entry.resolve())
    (flash / "board.json").write_text(json.dumps(definition))
    prov = {"board_id": board_id}
    if pair_key:
        prov["pair_key"] = pair_key.hex()
    (flash / "provision.json").write_text(json.dumps(prov))
    return flash


def command(flash: Path, definition: dict[str, Any], uarts: dict[str, Path | str], *,
            heap: str, camera: Path | None, micropython: Path,
            extra: list[str] | None = None) -> list[str]:
    """The launch command of one board: each role's line mapped to the UART
    number (or the SPI / I2C bus) the definition wires it to."""
    chip = definition.get("chip", "esp32")
    # (A deployed definition has no "module": a camera says PSRAM, the validator
    # refuses a camera without it.)
    psram = definition.get("module", {}).get("psram", "none") != "none" or "camera" in definition
    args = ["--flash", str(flash), "--chip", chip]
    if psram:
        args.append("--psram")
    specs = definition.get("uarts", {})
    pn = definition.get("pn532") or {}
    for role, path in uarts.items():
        p = str(path)
        if not p.startswith(("socket:", "stdio")):
            p = os.path.realpath(p)
        if role == "pn532" and pn.get("bus") in ("spi", "i2c"):
            bus = pn["bus"]
            args += [f"--{bus}", f"{pn[bus]['id']}={p}"]
            continue
        spec = specs.get(role)
        if spec is None:
            raise ValueError(f"the board definition has no UART for role {role!r}")
        uid = 0 if spec.get("repl") else spec["id"]
        args += ["--uart", f"{uid}={p}"]
        if spec.get("repl"):
            # The REPL runs at the image's rate (MICROPY_HW_UART_REPL_BAUD):
            # 115 200 unless the board says its image was built otherwise.
            args += ["--repl-baud", str(spec.get("image_baud", 115200))]
    if camera is not None:
        args += ["--camera", str(camera)]
    budget = parse_heap(heap)
    psram_heap = PSRAM_FBS if psram and "camera" in definition else 0
    args += ["--heap-free", str(budget - _START_COST), "--internal-heap", str(INTERNAL_HEAP),
             "--psram-heap", str(psram_heap)]
    args += list(extra or [])
    total = budget + STANDIN_HEAP + INTERNAL_HEAP + psram_heap
    return [str(micropython), "-X", f"heapsize={total}", str(LAUNCH), *args]
