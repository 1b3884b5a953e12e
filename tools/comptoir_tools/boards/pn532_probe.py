"""``comptoir pn532 probe``: does a PN532 answer on this serial port?

For the integrator who wires a PN532 (HSU mode) to a USB-UART adapter before
assembling a board. Built on Adafruit's driver (adafruit-circuitpython-pn532),
not on ours, so that it also cross-checks the firmware's view of the chip.
Prints the firmware version and whether a target is in the field.

Exit status: 0 the PN532 answered; 1 nothing (or not a PN532) answered;
2 the port cannot be opened.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

import serial

_HINTS = (
    "check: the PN532 is in HSU (UART) mode (its DIP switches/jumpers), TX and RX are "
    "crossed (adapter TX -> PN532 RX), it is powered, the baud rate is 115200 unless changed"
)
_SUPPORT = ((0x01, "ISO 14443 type A"), (0x02, "ISO 14443 type B"), (0x04, "ISO 18092"))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="comptoir pn532 probe",
        description="Check that a PN532 answers on a serial port; show what is in its field.",
    )
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=115200, help="HSU baud rate (default 115200)")
    p.add_argument("--poll", type=float, default=0.5, help="seconds to look for a target")
    return p


def describe_target(reply: bytes) -> str:
    """A line for an InListPassiveTarget reply (after D5 4B)."""
    if not reply or reply[0] == 0:
        return "no target in the field"
    if len(reply) < 6 or 6 + reply[5] > len(reply):
        return f"a target answered, reply malformed: {reply.hex(' ')}"
    sak, uid = reply[4], reply[6 : 6 + reply[5]]
    rest = reply[6 + reply[5] :]
    kind = "ISO 14443-4: a phone in card emulation or a smart card" if sak & 0x20 else (
        "not ISO 14443-4 (a memory/MIFARE card: not a phone)"
    )
    line = f"target in the field: UID {uid.hex(' ')}, SAK {sak:02X} ({kind})"
    if rest:
        line += f", ATS {rest[: rest[0]].hex(' ')}"
    if uid[:1] == b"\x08" and len(uid) == 4:
        line += "; random UID (08 ..), as phones give"
    return line


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    out = out or sys.stdout
    err = sys.stderr if out is sys.stdout else out
    try:
        port = serial.Serial(args.port, args.baud, timeout=0.1)
    except (serial.SerialException, OSError, ValueError) as e:
        print(f"error: cannot open {args.port}: {e}", file=err)
        return 2
    try:
        from adafruit_pn532.adafruit_pn532 import BusyError  # type: ignore[import-untyped]
        from adafruit_pn532.uart import PN532_UART  # type: ignore[import-untyped]

        try:
            pn = PN532_UART(port)
            ic, ver, rev, support = pn.firmware_version
        except (RuntimeError, BusyError, IndexError, OSError, AssertionError) as e:
            print(f"error: no PN532 answered on {args.port} at {args.baud} baud ({e}); "
                  f"{_HINTS}", file=err)
            return 1
        if ic != 0x32:
            print(f"error: the chip on {args.port} says IC 0x{ic:02X}, not a PN532 (0x32)",
                  file=err)
            return 1
        kinds = ", ".join(name for bit, name in _SUPPORT if support & bit) or "none"
        print(f"PN532 on {args.port}: firmware {ver}.{rev} (IC 0x{ic:02X}; {kinds})", file=out)
        # Finite retries (the default FF would poll until the next command), then one poll.
        pn.call_function(0x32, params=b"\x05\xff\x01\x10", timeout=0.5)
        try:
            reply = pn.call_function(0x4A, response_length=64, params=b"\x01\x00",
                                     timeout=args.poll)
        except (RuntimeError, BusyError) as e:
            print(f"warning: the passive-target poll failed: {e}", file=err)
            return 0
        print(describe_target(bytes(reply or b"")), file=out)
        pn.call_function(0x52, response_length=1, params=b"\x00", timeout=0.5)
        return 0
    finally:
        port.close()


if __name__ == "__main__":
    sys.exit(main())
