"""The PC-side probe against the simulator (and against nothing)."""

from __future__ import annotations

import io
import os

from comptoir_tools.boards.pn532_probe import describe_target, main
from comptoir_tools.simulators.phone import Phone
from comptoir_tools.simulators.pn532_sim import PN532Sim


def test_probe_finds_the_chip_and_a_phone() -> None:
    with PN532Sim(seed=11) as sim:
        uid = sim.place(Phone())
        out = io.StringIO()
        assert main(["--port", sim.port], out=out) == 0
        text = out.getvalue()
        assert "firmware 1.6 (IC 0x32; ISO 14443 type A, ISO 14443 type B, ISO 18092)" in text
        assert f"UID {uid.hex(' ')}" in text and "SAK 20" in text
        assert "ATS 05 78 80 70 02" in text
        assert sim._max_retries[2] == 0x10  # it did not leave the chip polling forever


def test_probe_empty_field() -> None:
    with PN532Sim(seed=12) as sim:
        out = io.StringIO()
        assert main(["--port", sim.port, "--poll", "0.3"], out=out) == 0
        assert "no target in the field" in out.getvalue()


def test_probe_nothing_answers() -> None:
    master, slave = os.openpty()  # a port with nothing behind it
    try:
        out = io.StringIO()
        assert main(["--port", os.ttyname(slave)], out=out) == 1
        assert "no PN532 answered" in out.getvalue() and "TX and RX" in out.getvalue()
    finally:
        os.close(master)
        os.close(slave)


def test_probe_wrong_port() -> None:
    out = io.StringIO()
    assert main(["--port", "/dev/does-not-exist-pn532"], out=out) == 2
    assert "cannot open /dev/does-not-exist-pn532" in out.getvalue()


def test_describe_target() -> None:
    card = bytes.fromhex("01 01 00 44 08 07 04 11 22 33 44 55 66")  # a MIFARE card
    line = describe_target(card)
    assert "not ISO 14443-4" in line and "UID 04 11 22 33 44 55 66" in line
    assert "ATS" not in line and "random UID" not in line
    assert "malformed" in describe_target(bytes.fromhex("01 01 00 04 20 09 08"))
    assert describe_target(b"\x00") == "no target in the field"
