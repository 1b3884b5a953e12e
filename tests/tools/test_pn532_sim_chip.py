"""The simulator behaves like a PN532 v1.6 for drivers other than ours (issue 14).

Each test here pins one behaviour the review of nfcpy against the simulator
(shared/reviews/pn532-nfcpy.md, D1-D6) found missing, byte for byte, with the
evidence named in the test and in docs/nfc.md §4.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pn532_host import SimHost

from comptoir_tools.simulators.phone import COMPTOIR_AID, Phone, default_presentation
from comptoir_tools.simulators.pn532_sim import ACK, ERROR_FRAME, Fault, PN532Sim, encode_frame

WAKE = b"\x55\x55" + bytes(14)
NFCPY_PREAMBLE = bytes(10)  # nfcpy's pn532.init: ten 0x00 before a command, never 0x55
SELECT = bytes.fromhex("00A404000A") + COMPTOIR_AID + b"\x00"


def cmd(hexdata: str) -> bytes:
    return encode_frame(0xD4, bytes.fromhex(hexdata))


def reply(hexdata: str) -> bytes:
    return encode_frame(0xD5, bytes.fromhex(hexdata))


ATS_REPLY = reply("43 00 05 78 80 70 02")  # InCommunicateThru RATS -> the phone's ATS


class Raw(SimHost):
    def call(self, frame: bytes, expected: bytes, timeout: float = 0.5) -> bytes:
        """Send a command, check the ACK, return what follows (len(expected) bytes)."""
        self.send(frame)
        ack = self.recv(6, timeout)
        assert ack == ACK, ack.hex()
        return self.recv(len(expected), timeout)

    def thru(self, raw: str, n_reply: int | None = None, timeout: float = 0.5) -> bytes:
        """InCommunicateThru; returns the data after D5 43 (status first)."""
        self.send(cmd("42 " + raw))
        assert self.recv(6, timeout) == ACK
        head = self.recv(5, timeout)
        assert head[:3] == b"\x00\x00\xff", head.hex()
        if head[3:5] == b"\xff\xff":  # extended frame: LENhi LENlo LCS
            ext = self.recv(3, timeout)
            head, n = head + ext, (ext[0] << 8) | ext[1]
        else:
            n = head[3]
        frame = head + self.recv(n + 2, timeout)
        assert frame[len(head) : len(head) + 2] == b"\xd5\x43", frame.hex()
        return frame[len(head) + 2 : -2]


@pytest.fixture
def sim() -> Iterator[PN532Sim]:
    with PN532Sim(seed=11) as s:
        yield s


@pytest.fixture
def raw(sim: PN532Sim) -> Iterator[Raw]:
    r = Raw(sim.port)
    yield r
    r.u.close()


@pytest.fixture
def host(sim: PN532Sim, raw: Raw) -> Raw:
    """Initialised as nfcpy does it: SAMConfiguration 01 00 00, SetParameters 00 (no
    automatic RATS), finite passive retries."""
    assert raw.call(NFCPY_PREAMBLE + cmd("14 01 00 00"), reply("15")) == reply("15")
    assert raw.call(cmd("12 00"), reply("13")) == reply("13")
    assert raw.call(cmd("32 05 01 00 01"), reply("33")) == reply("33")
    return raw


def listed(sim: PN532Sim, host: Raw, phone: Phone) -> bytes:
    uid = sim.place(phone)
    want = reply("4B 01 01 00 04 20 04" + uid.hex())
    assert host.call(cmd("4A 01 00"), want) == want
    return uid


# ---- D1: power-on, LowVbat -------------------------------------------------------


def test_power_on_answers_nfcpy_init_without_0x55(sim: PN532Sim, raw: Raw) -> None:
    # nfcpy pn532.init: 10 x 00 + GetFirmwareVersion, then 10 x 00 + SAMConfiguration.
    # PN532 v1.6 answers it (nfcpy#45, #38, #147; esphome#3281 shows D4 02 answered
    # before the first SAMConfiguration).
    want = bytes.fromhex("0000ff06fad50332010607e800")
    assert raw.call(NFCPY_PREAMBLE + cmd("02"), want) == want
    assert sim.lowvbat
    assert raw.call(NFCPY_PREAMBLE + cmd("14 01 00 00"), reply("15")) == reply("15")
    assert not sim.lowvbat


def test_lowvbat_accepts_version_diagnose_and_baud_but_not_rf_commands(
    sim: PN532Sim, raw: Raw
) -> None:
    # nfcpy 0.10.0 sent GetFirmwareVersion, SetSerialBaudrate and the Diagnose line
    # test before SAMConfiguration; nothing says an RF command runs in LowVbat.
    assert raw.call(cmd("00 00 41 42"), reply("01 00 41 42")) == reply("01 00 41 42")
    assert raw.call(cmd("10 04"), reply("11")) == reply("11")
    raw.send(ACK)
    raw.send(cmd("4A 01 00"))
    assert raw.quiet(0.05) == b""
    assert sim.stats.ignored == 1
    assert raw.call(cmd("14 01"), reply("15")) == reply("15")
    assert raw.call(cmd("32 05 01 00 01"), reply("33")) == reply("33")
    assert raw.call(cmd("4A 01 00"), reply("4B 00")) == reply("4B 00")


def test_strict_lowvbat_is_kept_as_an_injectable_fault(raw: Raw, sim: PN532Sim) -> None:
    # Today's strictest reading of AN10609 (asleep until 0x55, then only
    # SAMConfiguration), for boards that may behave so: applies from the next power-on.
    sim.strict_lowvbat = True
    sim.power_on_reset()
    raw.send(NFCPY_PREAMBLE + cmd("02"))
    assert raw.quiet(0.05) == b""
    raw.send(WAKE + cmd("02"))
    assert raw.quiet(0.05) == b""
    assert raw.call(cmd("14 01 14 01"), reply("15")) == reply("15")
    want = reply("03 32 01 06 07")
    assert raw.call(cmd("02"), want) == want


def test_strict_lowvbat_from_the_constructor() -> None:
    with PN532Sim(strict_lowvbat=True) as s:
        assert s.asleep and s.lowvbat


# ---- D6: PowerDown, its wake-up mask, SetSerialBaudrate ------------------------------


def test_power_down_still_needs_0x55(sim: PN532Sim, host: Raw) -> None:
    # nfcpy#186, #45, #38: after nfcpy's close (PowerDown B0 00) it cannot reopen
    # the chip: its 0x00 preamble does not wake an HSU PN532. libnfc wakes it with 55 55 00...
    assert host.call(cmd("16 B0 00"), reply("17 00")) == reply("17 00")
    time.sleep(0.01)
    assert sim.asleep
    host.send(NFCPY_PREAMBLE + cmd("02"))
    assert host.quiet(0.05) == b""
    want = reply("03 32 01 06 07")
    assert host.call(WAKE + cmd("02"), want) == want


def test_power_down_without_hsu_in_the_wake_mask_stays_asleep(sim: PN532Sim, host: Raw) -> None:
    # UM0701-02 PowerDown WakeUpEnable: INT0 01, INT1 02, RF 08, HSU 10, SPI 20, GPIO 40,
    # I2C 80. Only INT0 enabled: the HSU line cannot wake it.
    assert host.call(cmd("16 01 00"), reply("17 00")) == reply("17 00")
    time.sleep(0.01)
    host.send(WAKE + cmd("02"))
    assert host.quiet(0.08) == b""
    assert sim.asleep and sim.stats.wakeups == 0
    sim.power_on_reset()  # only a power cycle (or INT0, not modelled) brings it back
    want = reply("03 32 01 06 07")
    assert host.call(NFCPY_PREAMBLE + cmd("02"), want) == want


def test_pending_baud_rate_is_committed_only_by_the_ack_that_follows(
    sim: PN532Sim, host: Raw
) -> None:
    assert host.call(cmd("10 07"), reply("11")) == reply("11")
    want = reply("03 32 01 06 07")
    assert host.call(cmd("02"), want) == want  # another command, no ACK in between
    host.send(ACK)  # a later ACK (nfcpy's abort at close) no longer commits it
    time.sleep(0.02)
    assert sim.timing.baud == 115200
    assert host.call(cmd("10 07"), reply("11")) == reply("11")
    host.send(ACK)
    time.sleep(0.02)
    assert sim.timing.baud == 921600


# ---- D2: the field -------------------------------------------------------------------


def test_poll_switches_the_field_on_after_rf_off(sim: PN532Sim, host: Raw) -> None:
    # nfcpy's sense(): mute (32 01 02) then InListPassiveTarget; libnfc turns the field
    # off "for a better detection rate" and polls without switching it on again.
    assert host.call(cmd("32 01 02"), reply("33")) == reply("33")
    assert not sim.field
    listed(sim, host, Phone())
    assert sim.field


def test_field_off_deactivates_the_listed_phone(sim: PN532Sim, host: Raw) -> None:
    phone = Phone()
    listed(sim, host, phone)
    assert host.call(cmd("32 01 00"), reply("33")) == reply("33")
    assert host.call(cmd("40 01 00 A4 04 00 00"), reply("41 27")) == reply("41 27")


# ---- D3: registers -------------------------------------------------------------------


def test_fifo_holds_sens_req_after_an_empty_poll(host: Raw) -> None:
    # nfcpy sense_tta reads CIU_FIFOData (6339) after "no target": 26 (the SENS_REQ
    # still in the FIFO) means nothing answered (pn53x.py; its test_sense_tta_no_target_found).
    assert host.call(cmd("4A 01 00"), reply("4B 00")) == reply("4B 00")
    assert host.call(cmd("06 63 39"), reply("07 26")) == reply("07 26")


def test_read_and_write_registers(sim: PN532Sim, host: Raw) -> None:
    listed(sim, host, Phone())
    # After a type A activation: CRC on both ways, 106 kbit/s type A framing, 100 % ASK.
    got = host.call(cmd("06 63 02 63 03 63 05"), reply("07 80 80 40"))
    assert got == reply("07 80 80 40")
    assert host.call(cmd("08 63 02 80 63 03 80 63 05 40"), reply("09")) == reply("09")
    assert host.call(cmd("08 63 0D 10"), reply("09")) == reply("09")
    assert host.call(cmd("06 63 0D"), reply("07 10")) == reply("07 10")
    # CIU_TxControl follows the field: Tx1RFEn|Tx2RFEn on, off after RFConfiguration 01 00.
    assert host.call(cmd("06 63 04"), reply("07 83")) == reply("07 83")
    assert host.call(cmd("32 01 00"), reply("33")) == reply("33")
    assert host.call(cmd("06 63 04"), reply("07 80")) == reply("07 80")
    assert host.call(cmd("08 63 04 83"), reply("09")) == reply("09")
    assert sim.field


def test_malformed_register_commands_get_the_error_frame(host: Raw) -> None:
    assert host.call(cmd("06"), ERROR_FRAME) == ERROR_FRAME
    assert host.call(cmd("06 63"), ERROR_FRAME) == ERROR_FRAME
    assert host.call(cmd("08 63 02"), ERROR_FRAME) == ERROR_FRAME


# ---- D5: Diagnose 01/02, GetGeneralStatus, InSelect ----------------------------------


def test_diagnose_rom_and_ram_pass(host: Raw) -> None:
    assert host.call(cmd("00 01"), reply("01 00")) == reply("01 00")
    assert host.call(cmd("00 02"), reply("01 00")) == reply("01 00")


def test_general_status_reports_field_and_target(sim: PN532Sim, host: Raw) -> None:
    # D5 05 Err Field NbTg [Tg BrRx BrTx Type] SAM
    assert host.call(cmd("32 01 00"), reply("33")) == reply("33")
    assert host.call(cmd("04"), reply("05 00 00 00 00")) == reply("05 00 00 00 00")
    listed(sim, host, Phone())
    want = reply("05 00 01 01 01 00 00 00 00")
    assert host.call(cmd("04"), want) == want


def test_general_status_reports_the_last_rf_error(sim: PN532Sim, host: Raw) -> None:
    listed(sim, host, Phone())
    sim.inject(Fault.RF_ERROR, code=0x13)
    assert host.call(cmd("40 01 00 A4 04 00 00"), reply("41 13")) == reply("41 13")
    want = reply("05 13 01 01 01 00 00 00 00")
    assert host.call(cmd("04"), want) == want


def test_in_select(sim: PN532Sim, host: Raw) -> None:
    assert host.call(cmd("54 01"), reply("55 27")) == reply("55 27")
    listed(sim, host, Phone())
    assert host.call(cmd("54 01"), reply("55 00")) == reply("55 00")


# ---- D4: InCommunicateThru, ISO 14443-4 in software -------------------------------


def test_rats_then_i_blocks_r_blocks_and_deselect(sim: PN532Sim, host: Raw) -> None:
    phone = Phone()
    listed(sim, host, phone)
    assert host.thru("E0 80") == bytes.fromhex("00 05 78 80 70 02")
    assert phone.activations == 1
    assert host.thru("02" + SELECT.hex()) == bytes.fromhex("00 02 01 90 00")
    # nfcpy's presence check: R(NAK) with its next block number -> R(ACK), PICC's number.
    assert host.thru("B3") == bytes.fromhex("00 A2")
    # R(NAK) with the PICC's own number: the last block again (ISO 14443-4 rule 11).
    assert host.thru("B2") == bytes.fromhex("00 02 01 90 00")
    assert host.thru("C2") == bytes.fromhex("00 C2")  # S(DESELECT) answered
    t0 = time.monotonic()
    assert host.thru("03" + SELECT.hex()) == b"\x01"  # halted: silence, status 01
    assert time.monotonic() - t0 >= 0.0512  # after the default retry timeout, index 0A


def test_rats_after_automatic_rats_is_ignored(sim: PN532Sim, host: Raw) -> None:
    assert host.call(cmd("12 10"), reply("13")) == reply("13")
    uid = sim.place(Phone())
    want = reply("4B 01 01 00 04 20 04" + uid.hex() + "05 78 80 70 02")
    assert host.call(cmd("4A 01 00"), want) == want
    assert host.thru("E0 80") == b"\x01"


def test_slow_phone_asks_for_more_time_with_wtx(sim: PN532Sim, host: Raw) -> None:
    # The PRESENT takes 40 ms against FWT 38.7 ms (FWI 7): the phone sends S(WTX).
    phone = Phone(lambda c: default_presentation(c, size=200))
    listed(sim, host, phone)
    host.thru("E0 80")
    assert host.thru("02" + SELECT.hex()) == bytes.fromhex("00 02 01 90 00")
    present = "80 50 00 00 10" + bytes(range(16)).hex() + "F0"
    assert host.thru("03" + present) == bytes.fromhex("00 F2 01")
    got = host.thru("F2 01")
    assert got[:2] == b"\x00\x03" and got[-2:] == b"\x90\x00"
    assert got[2:-2] == phone.presentations[0]


def test_no_answer_within_the_retry_timeout_is_status_01(sim: PN532Sim, host: Raw) -> None:
    # RFConfiguration 02: RFU, ATR_RES timeout, retry timeout (nfcpy sets the third
    # before each InCommunicateThru). Index n = 100 us x 2^(n-1); 06 = 3.2 ms is less
    # than the phone's 8 ms turnaround.
    listed(sim, host, Phone())
    host.thru("E0 80")
    assert host.call(cmd("32 02 00 0B 06"), reply("33")) == reply("33")
    assert host.thru("02" + SELECT.hex()) == b"\x01"
    # The phone did answer (late): the PCD asks again with R(NAK), it re-sends.
    assert host.call(cmd("32 02 00 0B 0A"), reply("33")) == reply("33")
    assert host.thru("B2") == bytes.fromhex("00 02 01 90 00")


def test_chaining_both_ways(sim: PN532Sim, host: Raw) -> None:
    class Echo(Phone):
        def process_apdu(self, apdu: bytes) -> bytes:
            self.apdus += 1
            return bytes(apdu[5:]) * 2 + b"\x90\x00"

    phone = Echo()
    listed(sim, host, phone)
    host.thru("E0 80")
    data = bytes((7 * i) & 0xFF for i in range(200))
    apdu = bytes([0x00, 0xDA, 0x00, 0x00, len(data)]) + data
    # PCD chains: 150 bytes in I(1) 0 with the chaining bit, the rest in I(0) 1.
    assert host.thru("12" + apdu[:150].hex()) == bytes.fromhex("00 A2")
    first = host.thru("03" + apdu[150:].hex())
    # 402 bytes back against FSD 256: 253 per block, the first one chained (PCB 13).
    assert first[:2] == b"\x00\x13" and len(first) == 2 + 253
    rest = host.thru("A2")
    assert rest[:2] == b"\x00\x02"
    assert first[2:] + rest[2:] == data * 2 + b"\x90\x00"


def test_phone_going_away_mid_chain(sim: PN532Sim, host: Raw) -> None:
    class Big(Phone):
        def process_apdu(self, apdu: bytes) -> bytes:
            return bytes(600) + b"\x90\x00"

    phone = Big(leave_after_blocks=1)
    listed(sim, host, phone)
    host.thru("E0 80")
    first = host.thru("02 00 CA 00 00 00")
    assert first[:2] == b"\x00\x12"
    assert host.thru("A3") == b"\x01"
    assert sim.phone is None


def test_rx_crc_off_gives_the_crc_bytes(sim: PN532Sim, host: Raw) -> None:
    listed(sim, host, Phone())
    assert host.call(cmd("08 63 03 00"), reply("09")) == reply("09")  # RxCRCEn off
    got = host.thru("E0 80")
    assert got[:6] == bytes.fromhex("00 05 78 80 70 02") and len(got) == 8
    assert got[6:] == bytes.fromhex("A5 46")  # CRC_A of 05 78 80 70 02, LSB first


def test_tx_crc_off_the_phone_stays_silent(sim: PN532Sim, host: Raw) -> None:
    listed(sim, host, Phone())
    assert host.call(cmd("08 63 02 00"), reply("09")) == reply("09")  # TxCRCEn off
    assert host.thru("E0 80") == b"\x01"


def test_thru_without_a_phone_times_out(sim: PN532Sim, host: Raw) -> None:
    assert host.call(cmd("32 01 00"), reply("33")) == reply("33")
    assert host.thru("26") == b"\x01"
    assert sim.field  # InCommunicateThru switched it on


@pytest.mark.parametrize("code", [0x02, 0x13, 0x0B])
def test_rf_error_fault_in_the_software_iso_dep_path(sim: PN532Sim, host: Raw, code: int) -> None:
    listed(sim, host, Phone())
    host.thru("E0 80")
    sim.inject(Fault.RF_ERROR, command=0x42, code=code)
    assert host.thru("02" + SELECT.hex()) == bytes([code])
    # The block never reached the phone: the same block again gets the answer.
    assert host.thru("02" + SELECT.hex()) == bytes.fromhex("00 02 01 90 00")


def test_phone_leaves_fault_in_the_software_iso_dep_path(sim: PN532Sim, host: Raw) -> None:
    listed(sim, host, Phone())
    host.thru("E0 80")
    sim.inject(Fault.PHONE_LEAVES, command=0x42)
    assert host.thru("02" + SELECT.hex()) == b"\x01"
    assert sim.phone is None


def test_deselected_phone_does_not_answer_in_data_exchange_either(
    sim: PN532Sim, host: Raw
) -> None:
    assert host.call(cmd("12 14"), reply("13")) == reply("13")  # automatic RATS
    uid = sim.place(Phone())
    want = reply("4B 01 01 00 04 20 04" + uid.hex() + "05 78 80 70 02")
    assert host.call(cmd("4A 01 00"), want) == want
    sel = host.call(cmd("40 01" + SELECT.hex()), reply("41 00 01 90 00"))
    assert sel == reply("41 00 01 90 00")
    assert host.thru("C2") == bytes.fromhex("00 C2")
    # The chip-side ISO-DEP path meets the same halted phone: no answer, status 01.
    got = host.call(cmd("40 01" + SELECT.hex()), reply("41 01"), timeout=1.0)
    assert got == reply("41 01")


def test_phone_taken_away_while_answering_is_status_01(sim: PN532Sim, host: Raw) -> None:
    # FWI 10 (FWT 309 ms) and a 409.6 ms retry timeout (index 0D): the 150 ms answer
    # needs no WTX, and leaves a wide window to take the phone away (CI under load).
    phone = Phone(lambda c: default_presentation(c, size=100), present_time_s=0.150, fwi=10)
    listed(sim, host, phone)
    assert host.call(cmd("32 02 00 0B 0D"), reply("33")) == reply("33")
    host.thru("E0 80")
    assert host.thru("02" + SELECT.hex()) == bytes.fromhex("00 02 01 90 00")
    present = "80 50 00 00 10" + bytes(16).hex() + "F0"
    host.send(cmd("42 03" + present))
    assert host.recv(6) == ACK
    time.sleep(0.005)
    sim.remove()  # the phone is working on the answer
    got = host.recv(10, timeout=1.5)
    assert got == reply("43 01")


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (Fault.NO_ACK, lambda got: got == b""),
        (Fault.NACK, lambda got: got == bytes.fromhex("0000ffff0000")),
        (Fault.NO_REPLY, lambda got: got == ACK),
        (Fault.ERROR_FRAME, lambda got: got == ACK + ERROR_FRAME),
        (Fault.BAD_DCS, lambda got: got[:6] == ACK and got[6:-2] == ATS_REPLY[:-2]
         and got[-2] != ATS_REPLY[-2]),
        (Fault.GARBAGE, lambda got: got.startswith(ACK) and got.endswith(ATS_REPLY)
         and len(got) > 6 + len(ATS_REPLY)),
    ],
    ids=lambda v: v.value if isinstance(v, Fault) else "",
)
def test_frame_faults_apply_to_in_communicate_thru(sim: PN532Sim, host: Raw, fault: Fault,
                                                   check) -> None:  # type: ignore[no-untyped-def]
    listed(sim, host, Phone())
    sim.inject(fault, command=0x42)
    host.send(cmd("42 E0 80"))
    got = host.quiet(0.08)
    assert check(got), got.hex()
    # Lost before the chip ran it (no ACK, NACK, no reply): the phone never saw the RATS
    # and answers it now; otherwise it is in ISO-DEP and a RATS is not for it any more.
    again = host.thru("E0 80")
    ran = fault in (Fault.ERROR_FRAME, Fault.BAD_DCS, Fault.GARBAGE)
    assert again == (b"\x01" if ran else bytes.fromhex("00 05 78 80 70 02"))

