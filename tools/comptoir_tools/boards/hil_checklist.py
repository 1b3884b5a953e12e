"""The first thing `make hil` does on a real board: a short checklist run at the
board's own REPL, each answer printed beside what the twin's ESP32 port stand-in
(comptoir_tools.simulators.esp32_port) assumes. Review of 2026-12-02 (findings 1, 3, 5, 14):
what was read in the port's sources and not yet seen on a board.

The board runs Comptoir: its REPL is reached as `comptoir flash` reaches it (RTS
reset, Ctrl-C every 50 ms in the firmware's escape window), then each check is
one `mpremote exec`.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass

from comptoir_tools.boards.flash import _venv_tool, reset_and_interrupt


@dataclass
class Check:
    name: str
    twin_assumes: str
    board_says: str = ""


# Run at the REPL. Each prints one line "RESULT ...". The same rate as the REPL's
# for machine.UART(0): the code path is the one finding 1 is about, and the
# terminal keeps working whatever the answer.
UART0 = """
import machine
try:
    machine.UART(0, baudrate=115200)
    print("RESULT returned")
except OSError as e:
    print("RESULT OSError", e.args)
"""
WRITE_4K = """
import sys, time
b = bytes(4096)
t = time.ticks_us()
sys.stdout.buffer.write(b)
dt = time.ticks_diff(time.ticks_us(), t)
print()
print("RESULT %d us, %d B/s" % (dt, 4096 * 1000000 // max(dt, 1)))
"""
HEAP = """
import gc, micropython, esp32
for m in ("app", "board.esp32", "comptoir_link.link", "nfc_task", "frame_forwarder"):
    try:
        __import__(m)
    except Exception as e:
        print("import", m, e)
gc.collect()
micropython.mem_info()
print("RESULT free %d, idf %r" % (gc.mem_free(), esp32.idf_heap_info(esp32.HEAP_DATA)))
"""
S3_UART1 = """
import machine, micropython, time
micropython.kbd_intr(3)
u = machine.UART(1, baudrate=921600, tx=43, rx=44)
try:
    time.sleep(4)
    print("RESULT no KeyboardInterrupt")
except KeyboardInterrupt:
    print("RESULT KeyboardInterrupt")
"""


def _exec(port: str, code: str, timeout: float = 30.0) -> str:
    proc = subprocess.run([_venv_tool("mpremote"), "connect", port, "exec", code],
                          capture_output=True, timeout=timeout)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    return lines[-1][7:] if lines else f"no answer (mpremote: {out.strip()[-200:]})"


def run(board: str, link_port: str, repl_port: str | None = None) -> list[Check]:
    """The checklist on a board: link_port is the host link's, repl_port the
    REPL's (the same on the ESP32-CAM and the DevKitC; the native USB on the S3)."""
    repl = repl_port or link_port
    checks = []
    if not reset_and_interrupt(repl):
        return [Check("REPL reached", "three lone Ctrl-C in the 1.5 s window give the REPL",
                      "no REPL prompt: press EN and run again")]
    c = Check("machine.UART(0, baudrate=…) at the REPL",
              "OSError (-259, 'ESP_ERR_INVALID_STATE') on 1.23 … 1.29: the firmware never calls it")
    c.board_says = _exec(repl, UART0)
    checks.append(c)
    c = Check("4 kB sys.stdout.buffer.write on the REPL UART",
              "128 B a FreeRTOS tick: ~320 ms (~12.8 kB/s) at any rate; line-limited at 115 200")
    c.board_says = _exec(repl, WRITE_4K)
    checks.append(c)
    if board == "freenove-esp32s3-cam":
        c = Check("0x03 on UART1's RX (GPIO44, the CH343 port)",
                  "KeyboardInterrupt at the REPL (IDF 5.5 leaves GPIO44 on U0RXD; inferred): "
                  "the firmware keeps Ctrl-C off either way")
        result: list[str] = []
        t = threading.Thread(target=lambda: result.append(_exec(repl, S3_UART1)))
        t.start()
        time.sleep(1.5)
        import serial

        with serial.Serial(link_port, 921600) as s:
            for _ in range(10):
                s.write(b"\x03")
                time.sleep(0.1)
        t.join(20)
        c.board_says = result[0] if result else "no answer"
        checks.append(c)
    c = Check("heap after the firmware's modules are loaded",
              "MicroPython starts at 56 KB and grows by splits (no PSRAM); the twin gives "
              "the firmware 100 KB on the 64-bit unix port")
    c.board_says = _exec(repl, HEAP)
    checks.append(c)
    # Back to Comptoir for the link scenarios.
    subprocess.run([_venv_tool("mpremote"), "connect", repl, "exec",
                    "import machine; machine.reset()"], capture_output=True, timeout=15)
    time.sleep(3)
    return checks
