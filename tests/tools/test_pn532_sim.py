"""The PN532 simulator at byte level, over real pseudo-terminals."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from pn532_host import SimHost

from comptoir_tools.simulators.phone import Phone
from comptoir_tools.simulators.pn532_sim import (
    ACK,
    ERROR_FRAME,
    NACK,
    Fault,
    PN532Sim,
    Timing,
    encode_frame,
)

WAKE = b"\x55\x55" + bytes(14)


def cmd(hexdata: str) -> bytes:
    return encode_frame(0xD4, bytes.fromhex(hexdata))


def reply(hexdata: str) -> bytes:
    return encode_frame(0xD5, bytes.fromhex(hexdata))


class Raw(SimHost):
    """A host that speaks raw bytes to the simulator."""

    def expect(self, frame: bytes, expected: bytes, timeout: float = 0.5) -> bool:
        """Send a command; True if the ACK and then exactly `expected` come."""
        return self.call(frame, len(expected), timeout) == expected

    def call(self, frame: bytes, n_reply: int, timeout: float = 0.5) -> bytes:
        self.send(frame)
        assert self.recv(6, timeout) == ACK
        return self.recv(n_reply, timeout)


@pytest.fixture
def sim() -> Iterator[PN532Sim]:
    with PN532Sim(seed=7) as s:
        yield s


@pytest.fixture
def host(sim: PN532Sim) -> Iterator[Raw]:
    r = Raw(sim.port)
    r.send(WAKE + cmd("14 01 00 00"))
    assert r.recv(6) == ACK and r.recv(9) == reply("15")
    yield r
    r.u.close()


def test_strict_lowvbat_asleep_at_power_on_needs_wakeup_then_sam() -> None:
    # The strictest reading of AN10609, kept as an injectable quirk (issue 14; the
    # default power-on answers nfcpy's init: test_pn532_sim_chip.py).
    with PN532Sim(seed=7, strict_lowvbat=True) as sim:
        _strict_power_on(sim)


def _strict_power_on(sim: PN532Sim) -> None:
    r = Raw(sim.port)
    r.send(cmd("02"))  # no wake-up: lost
    assert r.quiet(0.05) == b""
    r.send(WAKE + cmd("02"))  # awake, but LowVbat: only SAMConfiguration
    assert r.quiet(0.05) == b""
    assert sim.lowvbat and not sim.asleep
    r.send(cmd("14 01 14 01"))
    assert r.recv(6) == ACK and r.recv(9) == reply("15")
    assert r.expect(cmd("02"), bytes.fromhex("0000FF06FAD50332010607E800"))
    # The first frame was lost byte by byte (asleep); the second was refused.
    assert sim.stats.ignored == 1 and sim.stats.wakeups == 1


def test_ack_comes_within_15_ms_and_reply_follows(host: Raw) -> None:
    t0 = time.monotonic()
    host.send(cmd("02"))
    assert host.recv(6) == ACK
    assert time.monotonic() - t0 < 0.015 + 0.01  # + scheduling slack
    assert host.recv(13) == reply("03 32 01 06 07")


def test_corrupt_host_frames_are_ignored(host: Raw) -> None:
    bad = bytearray(cmd("02"))
    bad[-2] ^= 1
    host.send(bytes(bad))
    assert host.quiet(0.05) == b""
    bad = bytearray(cmd("02"))
    bad[4] ^= 1
    host.send(bytes(bad))
    assert host.quiet(0.05) == b""


def test_unknown_command_or_bad_parameters_give_the_error_frame(host: Raw) -> None:
    assert host.expect(cmd("7E"), ERROR_FRAME)
    assert host.expect(cmd("32 05 FF"), ERROR_FRAME)  # MaxRetries needs 3 bytes
    assert host.expect(cmd("4A 03 00"), ERROR_FRAME)  # MaxTg 3


def test_nack_gets_the_last_reply_again(host: Raw) -> None:
    r1 = host.call(cmd("02"), 13)
    host.send(NACK)
    assert host.recv(13) == r1


def test_diagnose_line_test_echoes(host: Raw) -> None:
    assert host.expect(cmd("00 00 01 02 03"), reply("01 00 01 02 03"))


def test_default_max_retries_poll_forever_and_ack_aborts(sim: PN532Sim, host: Raw) -> None:
    host.send(cmd("4A 01 00"))
    assert host.recv(6) == ACK
    assert host.quiet(0.2) == b""  # MxRtyPassiveActivation FF: still polling
    host.send(ACK)  # abort
    sim.place(Phone())
    assert host.quiet(0.05) == b""
    assert sim.stats.aborted == 1


def test_finite_retries_answer_no_target_in_time(sim: PN532Sim, host: Raw) -> None:
    host.call(cmd("32 05 FF 01 09"), 9)  # 10 attempts
    t0 = time.monotonic()
    assert host.expect(cmd("4A 01 00"), reply("4B 00"))
    elapsed = time.monotonic() - t0
    assert 10 * sim.timing.poll_attempt_s * 0.9 < elapsed < 0.3


def test_phone_found_with_fresh_uid_and_android_ats(sim: PN532Sim, host: Raw) -> None:
    host.call(cmd("32 05 FF 01 01"), 9)
    uids = set()
    for _ in range(3):
        uid = sim.place(Phone())
        assert uid[0] == 0x08 and len(uid) == 4
        uids.add(uid)
        got = host.call(cmd("4A 01 00"), 24)
        assert got == reply("4B 01 01 00 04 20 04" + uid.hex() + "05 78 80 70 02")
        sim.remove()
    assert len(uids) == 3


def test_no_ats_without_automatic_rats(sim: PN532Sim, host: Raw) -> None:
    host.call(cmd("12 00"), 9)
    uid = sim.place(Phone())
    assert host.expect(cmd("4A 01 00"), reply("4B 01 01 00 04 20 04" + uid.hex()))


def test_exchange_select_and_timing(sim: PN532Sim, host: Raw) -> None:
    phone = Phone()
    sim.place(phone)
    host.call(cmd("4A 01 00"), 24)
    select = "00 A4 04 00 0A F0434F4D50544F495201 00"
    t0 = time.monotonic()
    assert host.expect(cmd("40 01 " + select), reply("41 00 01 90 00"))
    elapsed = time.monotonic() - t0
    floor = sim.timing.rf_s(16) + phone.apdu_time_s + sim.timing.rf_s(3)
    assert floor < elapsed < floor + 0.05
    assert phone.activations == 1


def test_exchange_without_target_is_27(host: Raw) -> None:
    assert host.expect(cmd("40 01 00 A4 04 00 00"), reply("41 27"))


def test_release_then_exchange_is_27(sim: PN532Sim, host: Raw) -> None:
    sim.place(Phone())
    host.call(cmd("4A 01 00"), 24)
    assert host.expect(cmd("52 00"), reply("53 00"))
    assert host.expect(cmd("40 01 00 A4 04 00 00"), reply("41 27"))


def test_phone_removed_gives_rf_timeout_after_fwt(sim: PN532Sim, host: Raw) -> None:
    sim.place(Phone())
    host.call(cmd("4A 01 00"), 24)
    sim.remove()
    t0 = time.monotonic()
    assert host.expect(cmd("40 01 00 A4 04 00 00"), reply("41 01"))
    assert time.monotonic() - t0 >= sim.timing.gone_s()


def test_long_answer_is_split_with_mi_in_extended_frames(sim: PN532Sim, host: Raw) -> None:
    class Big(Phone):
        def process_apdu(self, apdu: bytes) -> bytes:
            return bytes(range(256)) * 2 + b"\x90\x00"

    sim.place(Big())
    host.call(cmd("4A 01 00"), 24)
    whole = bytes(range(256)) * 2
    first = encode_frame(0xD5, b"\x41\x40" + whole[:262])
    assert first[3:5] == b"\xff\xff"  # extended
    assert host.expect(cmd("40 01 00 CA 00 00 00"), first)
    assert host.expect(cmd("40 01"), reply("41 00" + (whole[262:] + b"\x90\x00").hex()))


def test_power_down_then_wakeup_without_sam(sim: PN532Sim, host: Raw) -> None:
    assert host.expect(cmd("16 B0"), reply("17 00"))
    time.sleep(0.01)
    assert sim.asleep
    host.send(cmd("02"))
    assert host.quiet(0.05) == b""
    host.send(WAKE + cmd("02"))
    assert host.recv(6) == ACK and host.recv(13) == reply("03 32 01 06 07")


def test_set_serial_baudrate_applies_after_host_ack(sim: PN532Sim, host: Raw) -> None:
    assert host.expect(cmd("10 07"), reply("11"))
    assert sim.timing.baud == 115200
    host.send(ACK)
    time.sleep(0.02)
    assert sim.timing.baud == 921600


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (Fault.NO_ACK, lambda got: got == b""),
        (Fault.NACK, lambda got: got == NACK),
        (Fault.NO_REPLY, lambda got: got == ACK),
        (Fault.ERROR_FRAME, lambda got: got == ACK + ERROR_FRAME),
        (Fault.BAD_DCS, lambda got: got[:6] == ACK and got[6:-2] == reply("03 32 01 06 07")[:-2]
         and got[-2] != reply("03 32 01 06 07")[-2]),
        (Fault.BAD_LCS, lambda got: got[:6] == ACK and got[10] != reply("03 32 01 06 07")[4]),
        (Fault.GARBAGE, lambda got: got.startswith(ACK) and got.endswith(reply("03 32 01 06 07"))
         and len(got) > 19),
        (Fault.RESET, lambda got: got == b""),
    ],
)
def test_faults_at_byte_level(sim: PN532Sim, host: Raw, fault: Fault, check) -> None:  # type: ignore[no-untyped-def]
    sim.inject(fault)
    host.send(cmd("02"))
    got = host.quiet(0.06)
    assert check(got), got.hex()
    # The next command is served normally (after a wake-up + SAM if it reset).
    if fault is Fault.RESET:
        assert sim.lowvbat
        host.send(WAKE + cmd("14 01"))
        assert host.recv(6) == ACK and host.recv(9) == reply("15")
    assert host.expect(cmd("02"), reply("03 32 01 06 07"))


def test_slow_fault_delays_the_reply(sim: PN532Sim, host: Raw) -> None:
    sim.inject(Fault.SLOW, delay_s=0.15)
    host.send(cmd("02"))
    assert host.recv(6) == ACK
    assert host.recv(13, timeout=0.1) == b""
    assert host.recv(13, timeout=0.2) == reply("03 32 01 06 07")


def test_rf_faults_apply_to_exchanges(sim: PN532Sim, host: Raw) -> None:
    sim.place(Phone())
    host.call(cmd("4A 01 00"), 24)
    sim.inject(Fault.RF_ERROR, code=0x13, skip=1)
    sel = "40 01 00 A4 04 00 0A F0434F4D50544F495201 00"
    assert host.expect(cmd(sel), reply("41 00 01 90 00"))  # skipped
    assert host.expect(cmd(sel), reply("41 13"))
    sim.inject(Fault.PHONE_LEAVES)
    assert host.expect(cmd(sel), reply("41 01"))
    assert sim.phone is None


def test_symlink_and_attach_to_an_existing_pty(tmp_path) -> None:  # type: ignore[no-untyped-def]
    link = tmp_path / "pn532"
    master, slave = os.openpty()
    try:
        with PN532Sim(path=os.ttyname(slave), link=link) as s:
            assert os.path.realpath(link) == os.path.realpath(os.ttyname(slave))
            os.write(master, WAKE + cmd("14 01"))
            time.sleep(0.05)
            assert os.read(master, 100) == ACK + reply("15")
            assert s.stats.commands == {0x14: 1}
        assert not link.exists()
    finally:
        os.close(master)
        os.close(slave)


def test_timing_model_numbers() -> None:
    t = Timing()
    assert abs(t.byte_s - 86.8e-6) < 1e-6
    assert abs(t.fwt_s - 0.0387) < 0.0002
    # 240 bytes + PCB + CRC at 106 kbit/s, 9 bits a byte: about 20.7 ms.
    assert 0.020 < t.rf_s(240) < 0.0215
    assert t.rf_s(300) > t.rf_s(253) + 0.004  # chained: two blocks and an R(ACK)
