"""End to end on the real interpreter: the firmware's NFC flow (compiled to
.mpy) on the ESP32 port stand-in (MicroPython unix port) with an ESP32-sized
heap, reading taps from the PN532 simulator through a machine.UART (UART2, the
simulator on its pins). Reports the heap."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

from comptoir_tools.firmware.build import compile_tree
from comptoir_tools.simulators import esp32_port
from comptoir_tools.simulators.phone import Phone, default_presentation, verify_default_presentation
from comptoir_tools.simulators.pn532_sim import PN532Sim

ROOT = Path(__file__).resolve().parents[2]
MICROPYTHON = Path(sys.executable).with_name("micropython")
TAPS = 6

SCRIPT = """
import gc, sys, hashlib, binascii
from machine import UART
from pn532.chip import PN532
from pn532.transport import UartTransport
from nfc_reader import NfcReader
from comptoir_link.compat import ticks_ms, ticks_diff

uart = UART(2, baudrate=115200, tx=14, rx=13, rxbuf=1024, txbuf=512, timeout=0, timeout_char=2)
reader = NfcReader(PN532(UartTransport(uart)))
reader.start()
gc.collect()
print("READY", gc.mem_free())
n = 0
ch = hashlib.sha256(b"challenge %%d" %% n).digest()[:16]
taps = 0
lowest = gc.mem_free()
t_end = ticks_ms() + 60000
while taps < %(taps)d and ticks_diff(t_end, ticks_ms()) > 0:
    used = ch
    try:
        p = reader.poll_once(ch)
    except Exception as e:
        print("ERR", type(e).__name__, e)
        p = None
    if reader.challenge_spent:
        n += 1
        ch = hashlib.sha256(b"challenge %%d" %% n).digest()[:16]
    if p is None:
        continue
    before = gc.mem_free()
    if before < lowest:
        lowest = before
    print("TAP", binascii.hexlify(used).decode(),
          binascii.hexlify(hashlib.sha256(p).digest()).decode(), len(p), before)
    taps += 1
    while not reader.wait_removed(1000):
        pass
    gc.collect()
    print("GONE", gc.mem_free())
gc.collect()
print("DONE", taps, lowest, gc.mem_free())
"""


def test_taps_on_micropython_with_100k_heap(tmp_path: Path) -> None:
    fw = tmp_path / "fw"
    compile_tree(ROOT / "firmware", fw)
    with PN532Sim(seed=21) as sim:
        flash = esp32_port.deploy(tmp_path / "flash", fw, {"name": "nfc-e2e"},
                                  board_id="a1b2", pair_key=None)
        (flash / "nfc_e2e.py").write_text(SCRIPT % {"taps": TAPS})
        cmd = esp32_port.command(flash, {"name": "nfc-e2e"}, {}, heap="100K", camera=None,
                                 micropython=MICROPYTHON, extra=["--uart", f"2={sim.port}",
                                                                 "--script", "/nfc_e2e.py"])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, cwd=ROOT)
        assert proc.stdout is not None
        phones: list[Phone] = []
        lines: list[str] = []
        free_after: list[int] = []
        deadline = time.monotonic() + 60
        try:
            for line in proc.stdout:
                lines.append(line.rstrip())
                if not line.split():
                    continue
                word, *rest = line.split()
                if word in ("READY", "GONE"):
                    if word == "GONE":
                        free_after.append(int(rest[0]))
                    size = 600 + 900 * len(phones)  # 600 .. 5100 bytes
                    ph = Phone(lambda c, s=size: default_presentation(c, size=s))
                    phones.append(ph)
                    if len(phones) <= TAPS:
                        sim.place(ph)
                elif word == "TAP":
                    ch, digest, length = bytes.fromhex(rest[0]), rest[1], int(rest[2])
                    ph = phones[-1]
                    assert ph.challenges == [ch]  # one read per tap, this tap's challenge
                    pres = ph.presentations[0]
                    assert len(pres) == length and hashlib.sha256(pres).hexdigest() == digest
                    assert verify_default_presentation(pres, ch)
                    sim.remove()
                elif word == "DONE":
                    break
                assert time.monotonic() < deadline, lines[-5:]
        finally:
            proc.kill()
            proc.wait()
    out = "\n".join(lines)
    done = [ln for ln in lines if ln.startswith("DONE")]
    assert done, out
    _, taps, lowest, final = done[0].split()
    assert int(taps) == TAPS, out
    assert not [ln for ln in lines if ln.startswith("ERR")], out
    ready = int(lines[[ln.split()[0] for ln in lines].index("READY")].split()[1])
    # No growth: after each transaction (collected) the free heap comes back.
    assert max(free_after) - min(free_after) <= 512, free_after
    assert int(final) >= min(free_after) - 512
    print(f"\nheap (100K): free after init {ready} B, lowest free during taps {lowest} B, "
          f"free after each tap {min(free_after)}..{max(free_after)} B, final {final} B")
