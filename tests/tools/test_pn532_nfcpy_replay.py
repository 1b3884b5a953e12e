"""Replay: the command -> reply pairs of nfcpy 1.0.4's own PN532 tests, against the simulator.

nfcpy's tests (tests/test_clf_pn532.py and tests/base_clf_pn53x.py, read at tag
v1.0.4; no code of theirs is copied) feed its driver with PN532 replies. The table
below is ours: every pair whose command a driver sends to a chip in a state we model
(no card, or our phone), with the test it comes from and how it must match:

- ``exact``: the simulator's reply frame is byte for byte the one in nfcpy's test;
- ``shape``: nfcpy's test uses placeholder data (``AA BB`` register values, a
  3-byte general status), so the frame must have the reply code and the layout the
  manual and nfcpy's parser give (``n`` data bytes, or at least ``n``), and nfcpy's
  parser must accept it;
- ``bits``: nfcpy tests only some bits of the value (CIU_TxControl's field bits).

Left out, with the reason: replies that need a card we do not simulate (Type 1/2
tags, FeliCa and Type B cards, DEP targets: ``4B 01 01 0C 00 B2 56 54 00``...), the
target-mode commands (TgInitAsTarget and the Tg* family), and pure parser tests
with invented data (``43 00 AABB`` for ``42 3132``, ``4B 01 01 32``, ``41 00 AABB``,
Diagnose test number FF); where a placeholder pair has a command we model, it is
replayed as ``shape``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pn532_host import SimHost

from comptoir_tools.simulators.phone import Phone
from comptoir_tools.simulators.pn532_sim import ACK, PN532Sim, encode_frame

PREAMBLE = bytes(10)  # nfcpy's long preamble
LINE = bytes(range(256)) + bytes(range(6))  # nfcpy Device.__init__ line test, 262 bytes

# (nfcpy test, setup, command after D4, reply after D5, match)
PAIRS: list[tuple[str, str, str, str, str]] = [
    ("test_clf_pn532 device fixture: init", "power-on", "02", "03 32010607", "exact"),
    ("test_clf_pn532 test_sam_configuration normal", "power-on", "14 01 00 00", "15", "exact"),
    ("test_clf_pn532 test_sam_configuration virtual", "power-on", "14 02 01 01", "15", "exact"),
    ("test_clf_pn532 test_sam_configuration wired", "power-on", "14 03 02 00", "15", "exact"),
    ("test_clf_pn532 test_sam_configuration dual", "power-on", "14 04 03 01", "15", "exact"),
    ("test_clf_pn532 device fixture: Diagnose line test", "init",
     "00 00" + LINE.hex(), "01 00" + LINE.hex(), "exact"),
    ("base_clf_pn53x test_diagnose rom", "init", "00 01", "01 00", "exact"),
    ("base_clf_pn53x test_diagnose ram", "init", "00 02", "01 00", "exact"),
    ("test_clf_pn532 device fixture: version again", "init", "02", "03 32010607", "exact"),
    ("test_clf_pn532 device fixture: SetParameters", "init", "12 00", "13", "exact"),
    ("test_clf_pn532 device fixture: RF timings", "init", "32 02 00 0b 0a", "33", "exact"),
    ("test_clf_pn532 device fixture: MaxRtyCOM", "init", "32 04 00", "33", "exact"),
    ("test_clf_pn532 device fixture: MaxRetries", "init", "32 05 01 00 01", "33", "exact"),
    ("test_clf_pn532 device fixture: analog 106A", "init",
     "32 0a 59f43f114d85616f266287", "33", "exact"),
    ("test_clf_pn532 device fixture: analog 212/424F", "init",
     "32 0b 69ff3f114185616f", "33", "exact"),
    ("test_clf_pn532 device fixture: analog 106B", "init", "32 0c ff0485", "33", "exact"),
    ("test_clf_pn532 device fixture: analog 14443-4", "init",
     "32 0d 85158a8508b28501da", "33", "exact"),
    ("test_clf_pn532 device fixture: mute", "init", "32 01 02", "33", "exact"),
    ("base_clf_pn53x test_sense_ttf_more_rf_on_time: field on", "init", "32 01 01", "33",
     "exact"),
    ("base_clf_pn53x test_sense_tta_no_target_found", "init", "4A 01 00", "4B 00", "exact"),
    ("base_clf_pn53x test_sense_tta_no_target_found: FIFO", "empty poll", "06 6339", "07 26",
     "exact"),
    ("base_clf_pn53x test_sense_tta_send_with_uid 4 bytes", "init", "4A 01 00 01020304",
     "4B 00", "exact"),
    ("base_clf_pn53x test_sense_tta_send_with_uid 7 bytes", "init",
     "4A 01 00 8801020304050607", "4B 00", "exact"),
    ("base_clf_pn53x test_sense_ttb_no_target_found", "init", "4A 01 03 00", "4B 00", "exact"),
    ("base_clf_pn53x test_sense_ttf_no_target_found", "init", "4A 01 01 00ffff0100", "4B 00",
     "exact"),
    ("base_clf_pn53x test_sense_ttf_no_target_found: TxControl", "field on", "06 6304",
     "07 03", "bits:03"),
    ("base_clf_pn53x test_sense_ttf_more_rf_on_time: TxControl", "field off", "06 6304",
     "07 00", "bits:03"),
    ("base_clf_pn53x test_read_register XRAM", "init", "06 0102", "07 01", "shape:1"),
    ("base_clf_pn53x test_read_register CIU_TMode", "init", "06 631A", "07 BB", "shape:1"),
    ("base_clf_pn53x test_read_register two", "init", "06 0102631A", "07 AABB", "shape:2"),
    ("test_clf_pn532 send_cmd_recv_rsp: TxMode RxMode TxAuto", "phone listed",
     "06 6302 6303 6305", "07 000000", "shape:3"),
    ("base_clf_pn53x test_write_register XRAM", "init", "08 0102 00", "09", "exact"),
    ("base_clf_pn53x test_write_register CIU_Mode", "init", "08 6301 01", "09", "exact"),
    ("base_clf_pn53x test_write_register two", "init", "08 0102 10 6301 11", "09", "exact"),
    ("test_clf_pn532 send_cmd_recv_rsp: write back", "phone listed",
     "08 630200 630300 630540", "09", "exact"),
    ("base_clf_pn53x test_get_general_status", "init", "04", "05 00 01 02", "shape+:3"),
    ("base_clf_pn53x test_in_communicate_thru: nothing answers", "init", "42", "43 01",
     "exact"),
    ("base_clf_pn53x test_in_communicate_thru: 31 32 to the phone", "phone listed",
     "42 3132", "43 00 aabb", "shape+:1"),
    ("base_clf_pn53x test_in_list_passive_target 212F, no target", "init",
     "4A 01 02 31", "4B 00", "exact"),
    *[
        (f"test_clf_pn532 test_set_serial_baudrate {i}", "init", f"10 {i:02x}", "11", "exact")
        for i in range(9)
    ],
    *[
        (f"test_clf_pn532 test_power_down {mask:02x}", "init", f"16 {mask:02x} {irq:02x}",
         "17 00", "exact")
        for mask, irq in ((0x01, 0), (0x02, 0), (0x08, 0), (0x10, 0), (0x20, 0), (0x40, 0),
                          (0x80, 0), (0xB0, 1))
    ],
    ("test_clf_pn532 device close: PowerDown", "init", "16 b0 00", "17 00", "exact"),
]


class Host(SimHost):
    def command(self, data: bytes, preamble: bytes = b"") -> bytes:
        """Send D4 + data; return the reply frame (after the ACK)."""
        self.u.write(preamble + encode_frame(0xD4, data))
        assert self.recv(6) == ACK
        head = self.recv(5)
        assert head[:3] == b"\x00\x00\xff", head.hex()
        if head[3:5] == b"\xff\xff":
            ext = self.recv(3)
            head, n = head + ext, (ext[0] << 8) | ext[1]
        else:
            n = head[3]
        return head + self.recv(n + 2)


@pytest.fixture(scope="module")
def sim() -> Iterator[PN532Sim]:
    with PN532Sim(seed=4) as s:
        yield s


@pytest.fixture(scope="module")
def host(sim: PN532Sim) -> Iterator[Host]:
    h = Host(sim.port)
    yield h
    h.u.close()


def setup(sim: PN532Sim, host: Host, state: str) -> None:
    sim.remove()
    sim.power_on_reset()
    time.sleep(0.005)
    host.u.read()
    if state == "power-on":
        return
    # nfcpy's init (pn532.init and Device.__init__), the parts that set chip state.
    for data in ("14 01 00 00", "12 00", "32 05 01 00 01"):
        host.command(bytes.fromhex(data), PREAMBLE)
    if state == "empty poll":
        host.command(bytes.fromhex("4A 01 00"))
    elif state == "field on":
        host.command(bytes.fromhex("32 01 01"))
    elif state == "field off":
        host.command(bytes.fromhex("32 01 02"))
    elif state == "phone listed":
        sim.place(Phone())
        host.command(bytes.fromhex("4A 01 00"))


@pytest.mark.parametrize(("source", "state", "command", "want", "match"), PAIRS,
                         ids=[p[0] for p in PAIRS])
def test_nfcpy_recorded_pair(sim: PN532Sim, host: Host, source: str, state: str,
                             command: str, want: str, match: str) -> None:
    setup(sim, host, state)
    got = host.command(bytes.fromhex(command), PREAMBLE)
    expected = encode_frame(0xD5, bytes.fromhex(want))
    if match == "exact":
        assert got == expected, (got.hex(), expected.hex())
        return
    # Frame well formed (checksums), right reply code.
    body = got[8:-2] if got[3:5] == b"\xff\xff" else got[5:-2]
    assert (sum(body) + got[-2]) & 0xFF == 0 and body[0] == 0xD5
    assert body[1] == expected[6], got.hex()
    data = body[2:]
    kind, n = match.split(":")
    if kind == "shape":
        assert len(data) == int(n), got.hex()
    elif kind == "shape+":
        assert len(data) >= int(n), got.hex()
    elif kind == "bits":
        mask = int(n, 16)
        assert data[0] & mask == bytes.fromhex(want)[1] & mask, got.hex()


def test_every_pair_is_in_nfcpys_format() -> None:
    # The table itself: one pair per (command, state), replies with code = command + 1.
    seen = set()
    for source, state, command, want, _ in PAIRS:
        assert (state, command, source) not in seen
        seen.add((state, command, source))
        assert bytes.fromhex(want)[0] == bytes.fromhex(command)[0] + 1, source
