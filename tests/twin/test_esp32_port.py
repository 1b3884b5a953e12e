"""The shipped board layer (firmware/board/esp32.py, firmware/cam/esp32.py) on
the ESP32 port stand-in (comptoir_tools.simulators.esp32_port), one test per finding of the
port review (/work/shared/reviews/esp32-port.md) that a board would hit. Each
failed on the firmware before its fix; the commit that fixed it says so.

A board here is the deployed tree, its board.json and provision.json, booted by
the stand-in's launch.py on the MicroPython unix port; its host line is a wire
model (a pty pair paced at the baud rate) and the test is the host (HostLink)."""

from __future__ import annotations

import copy
import os
import threading
import time
import tty
from pathlib import Path
from typing import Any

import pytest

from comptoir.daemon import parse_status
from comptoir_link import frames as F
from comptoir_link.host_side import HostLink
from comptoir_link.link import UP
from comptoir_tools.boards import definitions as boards
from comptoir_tools.firmware.build import compile_tree
from comptoir_tools.simulators.phone import Phone, default_presentation
from comptoir_tools.simulators.pn532_sim import PN532Sim, Timing
from comptoir_tools.simulators.wire import WireModel
from comptoir_tools.twin.twin import FirmwareProcess


@pytest.fixture(scope="module")
def fw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # COMPTOIR_FIRMWARE_SRC: another firmware tree (an older commit's, exported) to
    # see these tests fail on the code before its fixes.
    out = tmp_path_factory.mktemp("fw") / "firmware"
    src = os.environ.get("COMPTOIR_FIRMWARE_SRC")
    if src:
        compile_tree(Path(src), out)
    else:
        compile_tree(out=out)
    return out


class Dut:
    """One board on the stand-in, and the host end of its line."""

    def __init__(self, fw: Path, tmp: Path, definition: dict[str, Any], *,
                 options: list[str] | None = None, pn532: bool = True,
                 heartbeat_ms: int = 300, rto_base_ms: int = 100) -> None:
        self.definition = definition
        host = definition["uarts"]["host"]
        self.wire = WireModel(host["baud"], tmp / "dev", name="dut", seed=1).start()
        uarts: dict[str, Path | str] = {"host": self.wire.path_a}
        self.sim: PN532Sim | None = None
        if pn532 and "pn532" in definition:
            self.sim = PN532Sim(timing=Timing(model_uart=False), seed=1).start()
            uarts["pn532"] = self.sim.port
        board_file = tmp / "board.json"
        board_file.write_text(__import__("json").dumps(definition))
        self.fp = FirmwareProcess(fw, uarts, board_id="a1b2c3d4", state_dir=tmp / "state",
                                  board_file=board_file, restart=False,
                                  heap="2M" if "camera" in definition else "100K",
                                  port_options=options)
        self.fp.start()
        self.fd = os.open(os.path.realpath(self.wire.path_b), os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        os.set_blocking(self.fd, False)
        self.got: list[tuple[int, bytes]] = []
        self.rx = bytearray()
        self.link = HostLink(lambda b: os.write(self.fd, bytes(b)), heartbeat_ms=heartbeat_ms,
                             baud=host["baud"], rto_base_ms=rto_base_ms)
        self.link.on_message = lambda t, p: self.got.append((t, bytes(p)))

    def pump(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            data = b""
        if data:
            self.rx += data
            self.link.feed(data)
        self.link.poll()

    def until(self, cond, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            if cond():
                return True
            time.sleep(0.003)
        return False

    def console(self) -> str:
        return "\n".join(self.fp.lines)

    def wait_line(self, text: str, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in list(self.fp.lines)):
                return True
            time.sleep(0.02)
        return False

    def up(self, timeout: float = 20.0) -> bool:
        return self.until(lambda: self.link.state == UP, timeout)

    def status(self) -> dict[str, int]:
        n = sum(1 for t, _ in self.got if t == F.STATUS)
        assert self.until(lambda: self.link.send(F.STATUS_REQUEST))
        assert self.until(lambda: sum(1 for t, _ in self.got if t == F.STATUS) > n)
        return parse_status([p for t, p in self.got if t == F.STATUS][-1])

    def close(self) -> None:
        self.fp.stop()
        os.close(self.fd)
        self.wire.stop()
        if self.sim is not None:
            self.sim.close()


@pytest.fixture
def dut(fw: Path, tmp_path: Path):
    made: list[Dut] = []

    def make(definition: dict[str, Any], **kw: Any) -> Dut:
        d = Dut(fw, tmp_path / f"dut{len(made)}", definition, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def _board(name: str) -> dict[str, Any]:
    return copy.deepcopy(boards.load(name).device_definition())


def _idf_internal_used(d: Dut) -> int:
    """The stand-in's IDF internal heap in use (UART rings), from its console."""
    line = [ln for ln in d.fp.lines if ln.startswith("[esp32] IDF internal heap used")]
    assert line, d.console()
    return int(line[-1].split()[-1])


def _tap(d: Dut) -> bool:
    """A phone on the reader, with a challenge from the host: the board reads its
    presentation and sends it (OBJECT_CHUNKs): its NFC path works."""
    assert d.sim is not None
    assert d.until(lambda: d.link.send(F.CHALLENGE, b"\x01\x00" + bytes(range(16))))
    d.sim.place(Phone(lambda c: default_presentation(c, size=600)))  # a wallet's size
    ok = d.until(lambda: any(t == F.OBJECT_CHUNK for t, _ in d.got), 15)
    d.sim.remove()
    return ok


# ---------------------------------------------------------------- finding 1
def test_esp32_cam_link_runs_at_the_repl_rate_without_touching_uart0(dut) -> None:
    """machine.UART(0, baudrate=...) raises OSError on the REPL UART (>= 1.23): the
    ESP32-CAM's firmware must never call it; its link runs at the image's rate."""
    d = dut(_board("esp32-cam-ai-thinker"))
    assert d.definition["uarts"]["host"]["baud"] == 115200
    assert d.up(), d.console()
    assert "uart_set_rx_full_threshold" not in d.console()
    assert "REPL" not in d.console(), d.console()


def test_validator_refuses_a_repl_uart_rate_other_than_the_images() -> None:
    raw = copy.deepcopy(boards.load("esp32-cam-ai-thinker").definition)
    raw["uarts"]["host"]["baud"] = 921600
    errors = [i for i in boards.check(raw) if i.level == "error"]
    assert any(i.where == "uarts.host.baud" and "OSError" in i.message for i in errors), errors
    raw["uarts"]["host"]["image_baud"] = 921600  # an image built with that REPL rate
    assert not [i for i in boards.check(raw) if i.level == "error"]


# ---------------------------------------------------------------- finding 2
@pytest.mark.parametrize("fault", ["--no-camera-module", "--camera-fault"])
def test_camera_board_without_a_working_camera_keeps_nfc(dut, fault) -> None:
    """`import camera` raises ImportError on a stock image, Camera() OSError when
    the sensor gives no first frame: the board still runs its link and NFC."""
    d = dut(_board("freenove-esp32s3-cam"), options=[fault])
    assert d.up(), d.console()
    assert _tap(d), d.console()
    assert d.fp.running, d.console()


# ---------------------------------------------------------------- finding 3
@pytest.mark.parametrize("shared", ["1", "0"])
def test_s3_host_link_carries_ctrl_c_bytes(dut, shared) -> None:
    """The S3's host RX pin is UART0's (GPIO44): with ESP-IDF >= 5.5 (shared=1,
    inferred) UART0's REPL ISR sees the host's bytes too, and a 0x03 raised
    KeyboardInterrupt. Correct either way: frames of 0x03 are answered."""
    d = dut(_board("freenove-esp32s3-cam"), options=["--s3-rx-shared", shared])
    assert d.up(), d.console()
    for size in (1, 3, 64, 300):
        n = sum(1 for t, _ in d.got if t == F.ERROR)
        assert d.until(lambda size=size: d.link.send(0x7E, b"\x03" * size))
        assert d.until(lambda n=n: sum(1 for t, _ in d.got if t == F.ERROR) > n, 10), \
            d.console()
    assert "KeyboardInterrupt" not in d.console(), d.console()
    assert d.fp.running


# ---------------------------------------------------------------- finding 4
def _when_started(d: Dut) -> None:
    assert d.wait_line("[esp32] stand-in:", 20), d.console()


def test_host_bytes_in_the_escape_window_do_not_park_the_board(dut) -> None:
    """After a reset the host still sends heartbeats and retransmits; one 0x03 in
    the 1.5 s after main.py starts must not leave the board at its REPL."""
    d = dut(_board("devkitc-pn532-spi"))
    _when_started(d)
    end = time.monotonic() + 3.0
    while time.monotonic() < end:  # a host's frames, 0x03 inside, every 30 ms
        d.wire.inject_garbage("b2a", b"\x00\x21\x03\x41\x03\x03\x7f\x03\x00")
        time.sleep(0.03)
    assert d.up(), d.console()
    assert "KeyboardInterrupt" not in d.console(), d.console()


def test_lone_ctrl_c_in_the_escape_window_gives_the_repl_back(dut) -> None:
    """What `comptoir flash` does after its reset: Ctrl-C every 50 ms."""
    d = dut(_board("devkitc-pn532-spi"))
    _when_started(d)
    end = time.monotonic() + 3.0
    while time.monotonic() < end and b">>> " not in d.rx:
        os.write(d.fd, b"\x03")
        time.sleep(0.05)
        d.pump()
    assert b">>> " in d.rx, d.console()
    assert d.wait_line("main.py ended: KeyboardInterrupt", 5), d.console()


# ---------------------------------------------------------------- finding 5
def test_repl_stdout_paced_by_the_tick_causes_no_retransmits(dut) -> None:
    """The REPL UART's stdout takes 128 bytes a FreeRTOS tick (~12.8 kB/s) at any
    rate: with an image whose REPL runs at 921 600, a 4 kB frame leaves in ~320 ms,
    not the 45 ms of line time the link's retransmit timer assumed."""
    board = _board("esp32-cam-ai-thinker")
    host = board["uarts"]["host"]
    host["baud"] = host["image_baud"] = 921600
    d = dut(board, options=["--no-camera-module"], pn532=False, heartbeat_ms=1000)
    assert d.up(), d.console()
    t0 = time.monotonic()
    assert d.until(lambda: d.link.send(F.BENCH_REQUEST, F.u16_bytes(12) + F.u16_bytes(4096)))
    assert d.until(lambda: any(t == F.BENCH_DONE for t, _ in d.got), 30), d.console()
    elapsed = time.monotonic() - t0
    st = d.status()
    got = sum(len(p) for t, p in d.got if t == F.BENCH_DATA)
    print(f"12 x 4 kB on the REPL UART at 921600: {got / elapsed:.0f} B/s, {st}")
    assert got == 12 * 4096
    assert got / elapsed < 14000  # the tick, not the line, sets the pace
    assert st["retransmits"] == 0, st


# ---------------------------------------------------------------- finding 6
@pytest.mark.parametrize("new_driver", ["1", "0"])
def test_pn532_on_i2c_reads_taps_with_either_i2c_driver(dut, new_driver) -> None:
    """With ESP-IDF >= 5.5.2 (MICROPY_HW_ESP_NEW_I2C_DRIVER) `timeout` is the whole
    transfer's limit in ms: the board file's 2000 us became 2 ms, shorter than a
    276-byte PN532 read at 100 kHz (~25 ms). Correct with both drivers."""
    board = _board("devkitc-pn532-spi")
    board["name"] = "devkitc-pn532-i2c"
    board["pn532"] = {"bus": "i2c", "i2c": {"id": 0, "sda": 21, "scl": 22, "freq": 100000,
                                             "timeout_us": 2000}}
    d = dut(board, options=["--i2c-new-driver", new_driver])
    assert d.up(), d.console()
    assert _tap(d), d.console()


# ---------------------------------------------------------------- finding 7
class _SlowSigningPhone(Phone):
    """Signs its presentation in `busy_s` (a slow keystore): the board's loop waits
    inside that one PN532 exchange meanwhile, as in list_passive_target / exchange on
    a board (0.3-0.5 s). Says when the PRESENT reached it."""

    def __init__(self, busy_s: float) -> None:
        super().__init__(lambda c: default_presentation(c, size=600), present_time_s=busy_s)
        self.presenting = threading.Event()

    def processing_time(self, apdu: bytes) -> float:
        t = super().processing_time(apdu)
        if t == self.present_time_s:
            self.presenting.set()
        return t


@pytest.mark.parametrize("name", ["esp32-cam-ai-thinker", "devkitc-pn532-spi"])
def test_host_burst_while_the_board_is_in_an_exchange_fits_the_repl_ring(dut, name) -> None:
    """A board whose host link is the REPL UART receives into stdin_ringbuf, 260 bytes
    (mphalport.c), and the ISR drops what does not fit (uart.c, py/ringbuf.h), while
    the loop can be away 0.35 s in one exchange. Everything the link lets the host
    have in flight then (a window of its largest frames, heartbeats) must fit: no
    frame lost, nothing retransmitted. (The host's retransmission timer is set long
    here: a loaded test machine must not stretch the busy time past it, which would
    only add copies of frames the ring already holds.)"""
    d = dut(_board(name), options=["--no-camera-module"], heartbeat_ms=1000,
            rto_base_ms=5000)
    assert d.up(), d.console()
    assert d.sim is not None
    assert d.until(lambda: d.link.send(F.CHALLENGE, b"\x01\x00" + bytes(range(16))))
    assert d.until(d.link.idle)
    phone = _SlowSigningPhone(0.35)
    d.sim.place(phone)
    assert d.until(phone.presenting.is_set, 15), d.console()
    limit = d.link.tx_limit
    for i in range(d.link.window):  # a type the board answers with ERROR 3, each once
        assert d.link.send(0x7E, bytes([0x41 + i]) * limit)
    # Both delivered: acknowledged, and (below) never sent twice. (The board answers
    # them with ERROR 3 only when its own window has room: not counted.)
    assert d.until(d.link.idle, 15), (d.link.counters, d.console())
    d.sim.remove()
    st = d.status()
    print(f"{name}: host payload limit {limit}, board {st}")
    assert st["crc_errors"] == 0 and st["malformed_frames"] == 0, st
    assert st["oversized_frames"] == 0, st
    assert d.link.counter("retransmits") == 0, d.link.counters


# ---------------------------------------------------------------- finding 10
def test_pn532_uart_rings_are_small_and_65536_is_refused(dut) -> None:
    """UART rings come from the IDF heap in internal RAM, beside the camera's DMA
    buffers: a PN532's frames are <= 275 bytes. machine_uart_obj_t keeps rxbuf in a
    uint16_t: 65536 becomes 0 and uart_driver_install fails."""
    d = dut(_board("esp32-cam-ai-thinker"), options=["--no-camera-module"])
    assert d.up(), d.console()
    used = _idf_internal_used(d)
    assert used <= 4096, used  # was 2 x 8 kB for the PN532's UART alone
    raw = copy.deepcopy(boards.load("freenove-esp32s3-cam").definition)
    raw["uarts"]["pn532"]["rxbuf"] = 65536
    assert [i for i in boards.check(raw) if i.level == "error"]
    assert _tap(d), d.console()


# ---------------------------------------------------------------- finding 11
@pytest.mark.parametrize(("key", "value"), [("frame_size", "96x96"), ("frame_size", "240x240"),
                                            ("pixel_format", "rgb565")])
def test_schema_refuses_camera_settings_the_camera_layer_cannot_do(key, value) -> None:
    raw = copy.deepcopy(boards.load("esp32-cam-ai-thinker").definition)
    raw["camera"][key] = value
    assert [i for i in boards.check(raw) if i.level == "error"], (key, value)


# ---------------------------------------------------------------- finding 12
def test_idf_error_logs_stay_out_of_the_repl_uart_link(dut) -> None:
    """ESP-IDF logs at level ERROR by default, on UART0: the ESP32-CAM's host link.
    The stand-in makes the IDF log an error every 200 ms; none may reach the host."""
    board = _board("esp32-cam-ai-thinker")
    d = dut(board, options=["--no-camera-module", "--idf-error-every-ms", "200"], pn532=False)
    assert d.up(), d.console()
    mark = len(d.rx)  # (before main.py silences them, the boot's logs reach the host too)
    d.until(lambda: False, 3.0)
    assert b"gpio_set_level" not in d.rx[mark:]
    st = d.status()
    assert st["crc_errors"] == 0 and st["malformed_frames"] == 0, st


# ---------------------------------------------------------------- findings 8, 9
def _clock(tmp: Path, line: str) -> None:
    with (tmp / "clock").open("a") as f:
        f.write(line + "\n")


def test_verdict_shown_across_the_ticks_wrap_clears_after_2_s(dut, tmp_path) -> None:
    """ticks_ms() + 2000 in the 2 s before the 2**30 wrap is not a small int on an
    ESP32; ticks_diff read it as one (no check, extmod/modtime.c): the verdict's
    LEDs and buzzer stayed on (for about 6 days). ticks_add wraps."""
    d = dut(_board("devkitc-pn532-spi"), options=["--clock-file", str(tmp_path / "clock")])
    assert d.up(), d.console()
    assert _tap(d), d.console()
    chunk = next(p for t, p in d.got if t == F.OBJECT_CHUNK)
    oid = chunk[1] | (chunk[2] << 8)
    _clock(tmp_path, f"set {(1 << 30) - 1000}")  # one second before the wrap
    d.until(lambda: False, 0.3)
    assert d.until(lambda: d.link.send(F.VERDICT, F.u16_bytes(oid) + bytes([F.V_ACCEPTED, 0, 0])
                                       + b"ok"))
    assert d.wait_line("OUT buzzer 1", 5), d.console()
    time.sleep(3.5)
    buzz = [ln for ln in d.fp.lines if ln.startswith("OUT buzzer")]
    assert buzz[-1] == "OUT buzzer 0", d.console()


def test_uptime_is_right_after_six_days(dut, tmp_path) -> None:
    """ticks_diff spans +-2**29 ms: from 6.2 days on, STATUS's uptime went negative."""
    d = dut(_board("devkitc-pn532-spi"), options=["--clock-file", str(tmp_path / "clock")],
            pn532=False)
    assert d.up(), d.console()
    for _ in range(3):  # 3 x 2**28 ms: 9.3 days, each step well inside half a period
        _clock(tmp_path, f"advance {1 << 28}")
        d.until(lambda: False, 1.0)
    assert d.up(), d.console()
    up = d.status()["uptime_ms"]
    assert 3 << 28 <= up <= (3 << 28) + 120_000, up
