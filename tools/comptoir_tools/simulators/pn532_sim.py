"""A PN532 that speaks HSU byte for byte on a pseudo-terminal, with phones.

The firmware (or any PN532 driver: Adafruit's is the reference in the
conformance test) opens ``sim.port`` as it would open the UART wired to a real
PN532. Behaviour follows the NXP PN532 user manual as summarised in
``shared/notes/pn532.md``; what is modelled and what is assumed is listed in
``docs/nfc.md``. In short:

- frames: normal and extended, ACK, NACK (the host asks for the last reply
  again), the error frame for commands it does not know or malformed ones, the
  host's ACK aborting the running command; frames with a bad LCS/DCS are ignored
  (no ACK);
- power: the chip starts in LowVbat with its HSU listening; in LowVbat it
  answers GetFirmwareVersion, Diagnose and SetSerialBaudrate, and
  SAMConfiguration takes it out (nfcpy's init, see ``_LOWVBAT_OK``). The
  strictest reading of AN10609 (asleep until a ``0x55``, then only
  SAMConfiguration) stays available: ``strict_lowvbat=True``. PowerDown puts it
  to sleep; only a ``0x55`` wakes the HSU, and only when PowerDown's wake-up mask
  has the HSU bit (the next 3 byte times are lost while the oscillator starts);
- commands: Diagnose (line test, ROM and RAM tests), GetFirmwareVersion (PN532
  v1.6), GetGeneralStatus, ReadRegister/WriteRegister (a CIU register file),
  SetParameters, SAMConfiguration, PowerDown, RFConfiguration (field, timings,
  MaxRetries: MxRtyPassiveActivation FF = poll forever, else ``retries + 1``
  attempts then ``D5 4B 00``), SetSerialBaudrate (committed by the host ACK
  that follows it, dropped by any other frame), InListPassiveTarget (106 kbit/s
  type A; the ATS when automatic RATS is on and SAK bit 0x20 is set),
  InDataExchange (MI in both directions; replies over 262 bytes are split),
  InCommunicateThru (raw frames to the phone, which runs ISO/IEC 14443-4 itself:
  see ``comptoir_tools.simulators.phone``), InSelect, InDeselect, InRelease; commands that
  need the RF field switch it on;
- timing: UART bytes at 10 bits / baud, ACK after ``ack_delay_s``, RF frames at
  106 kbit/s with 9 bits per byte plus ISO-DEP block overhead, the phone's
  processing time, a missing phone detected after the frame waiting time and
  its retries;
- faults, injected per command (:meth:`PN532Sim.inject`): see :class:`Fault`.

Phones are placed and removed by API (:meth:`PN532Sim.place`,
:meth:`PN532Sim.remove`); every placement gets a fresh random UID ``08 xx xx xx``
like Android's host card emulation.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import os
import random
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import ClassVar, Protocol

from comptoir_tools.simulators.phone import RfAnswer

__all__ = [
    "ACK",
    "ERROR_FRAME",
    "NACK",
    "CardEmulator",
    "Fault",
    "PN532Sim",
    "PtyUart",
    "SimStats",
    "Timing",
    "encode_frame",
]

ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"
MAX_EXCHANGE = 262
BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1288000)
RF_BITRATE = 13.56e6 / 128  # 105.9 kbit/s
_RF_ITEM_LEN = {0x01: 1, 0x02: 3, 0x04: 1, 0x05: 3, 0x0A: 11, 0x0B: 8, 0x0C: 3, 0x0D: 9}
# Commands a chip in LowVbat answers (SAMConfiguration also leaves LowVbat). nfcpy
# 1.0.4 sends GetFirmwareVersion before SAMConfiguration, nfcpy 0.10.0 also
# SetSerialBaudrate and the Diagnose line test, and both read real PN532 v1.6
# boards (nfcpy#45, #38, #147); esphome#3281 logs D4 02 answered before the first
# SAMConfiguration. That the chip ignores other commands there is [assumed].
_LOWVBAT_OK = frozenset({0x00, 0x02, 0x10, 0x14})
_STRICT_LOWVBAT_OK = frozenset({0x14})
WAKE_HSU = 0x10  # PowerDown WakeUpEnable bit for the HSU (UM0701-02 PowerDown)
# CIU registers (PN532 CIU = PN512; addresses as in nfcpy pn53x.py)
CIU_TX_MODE, CIU_RX_MODE, CIU_TX_CONTROL, CIU_TX_AUTO = 0x6302, 0x6303, 0x6304, 0x6305
CIU_FIFO_DATA, CIU_FIFO_LEVEL = 0x6339, 0x633A
CRC_EN = 0x80  # TxMode.TxCRCEn / RxMode.RxCRCEn
# Values after power-on [assumed: the PN512 data sheet's reset values; no chip read
# back]: Mode 3F, TxControl 80 (InvTx2RFOn, field off), Command 20, others 00.
_CIU_RESET = {0x6301: 0x3F, CIU_TX_CONTROL: 0x80, 0x6331: 0x20}
SENS_REQ = 0x26  # REQA, left in the CIU FIFO by a poll nothing answered


def crc_a(data: bytes) -> bytes:
    """ISO/IEC 14443-3 CRC_A (initial 6363), least significant byte first."""
    crc = 0x6363
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    return bytes([crc & 0xFF, crc >> 8])


def retry_timeout_s(index: int) -> float | None:
    """RFConfiguration timing index: 100 us × 2^(n-1) for n 1..16, no timeout for 0
    (nfcpy pn53x.py send_cmd_recv_rsp; UM0701-02 RFConfiguration item 02)."""
    if index == 0:
        return None
    return 100e-6 * 2 ** (min(index, 16) - 1)


def encode_frame(tfi: int, data: bytes) -> bytes:
    """A PN532 frame for TFI + data (extended when LEN > 254)."""
    body = bytes([tfi]) + bytes(data)
    n = len(body)
    if n < 255:
        head = bytes([0x00, 0x00, 0xFF, n, (-n) & 0xFF])
    else:
        hi, lo = n >> 8, n & 0xFF
        head = bytes([0x00, 0x00, 0xFF, 0xFF, 0xFF, hi, lo, (-(hi + lo)) & 0xFF])
    return head + body + bytes([(-sum(body)) & 0xFF, 0x00])


class CardEmulator(Protocol):
    """What the simulator needs of a phone (see comptoir_tools.simulators.phone.Phone)."""

    sens_res: int
    sel_res: int
    ats: bytes
    gone: bool

    def activate(self) -> None: ...
    def select_l3(self) -> None: ...
    def deactivate(self) -> None: ...
    def rf_receive(self, frame: bytes, at: float) -> RfAnswer | None: ...
    def process_apdu(self, apdu: bytes) -> bytes: ...
    def processing_time(self, apdu: bytes) -> float: ...


class Fault(Enum):
    """Faults to inject; each applies to the next matching command frame(s)."""

    NO_ACK = "no_ack"  # the command frame is lost: no ACK, no reply
    NACK = "nack"  # the chip answers NACK instead of ACK (and does not run it)
    NO_REPLY = "no_reply"  # ACK, then no reply
    GARBAGE = "garbage"  # noise bytes just before the reply
    BAD_LCS = "bad_lcs"  # the reply's length checksum is wrong (first sending only)
    BAD_DCS = "bad_dcs"  # the reply's data checksum is wrong (first sending only)
    ERROR_FRAME = "error_frame"  # the syntax-error frame instead of the reply
    SLOW = "slow"  # the reply comes `delay_s` late
    # InDataExchange (or, with command=0x42, InCommunicateThru) fails with status
    # `code` (01, 02, 13, 29, ...); the frame never reaches the phone
    RF_ERROR = "rf_error"
    PHONE_LEAVES = "phone_leaves"  # the phone leaves the field during this exchange
    RESET = "reset"  # brown-out: the chip restarts in LowVbat and loses this frame


_RF_FAULTS = (Fault.RF_ERROR, Fault.PHONE_LEAVES)


@dataclass
class _Injected:
    fault: Fault
    times: int
    command: int | None
    skip: int
    code: int
    delay_s: float


@dataclass
class Timing:
    """Modelled times, in seconds. Values marked [assumed] are not measured."""

    baud: int = 115200
    # The ACK follows the command frame quickly; nfcpy's comment bounds it at
    # 15 ms. [assumed: 0.5-2 ms typical]
    ack_delay_s: tuple[float, float] = (0.0005, 0.002)
    command_s: float = 0.001  # a local command (version, SAM, RF config) [assumed]
    poll_attempt_s: float = 0.005  # one passive activation attempt, no card [assumed]
    activation_s: float = 0.004  # REQA, anticollision, SELECT, RATS/ATS [assumed]
    fdt_s: float = 86e-6  # ISO 14443-3 frame delay time, PCD to PICC (1172/fc)
    fwt_s: float = 256 * 16 / 13.56e6 * 2**7  # FWI 7 from the ATS: 38.7 ms
    fwt_retries: int = 2  # R(NAK) retransmissions before status 01
    fsc: int = 256  # ATS FSCI 8; the PN532's RATS asks FSD 256
    wake_lost_bytes: int = 3  # bytes lost after the waking 0x55
    # Add the UART's byte time to every frame sent. Off when a wire model
    # (comptoir_tools.simulators.wire) between the driver and the simulator paces the line.
    model_uart: bool = True

    @property
    def byte_s(self) -> float:
        return 10 / self.baud

    def air_s(self, n: int) -> float:
        """Air time of one n-byte frame (CRC_A included), 9 bits per byte."""
        return n * 9 / RF_BITRATE

    def rf_s(self, n: int) -> float:
        """Air time of an n-byte APDU as ISO-DEP I-blocks (PCB + CRC per block,
        an R(ACK) back for every chained block), 9 bits per byte at 106 kbit/s."""
        per_block = self.fsc - 3
        blocks = max(1, -(-n // per_block))
        on_air = n + 3 * blocks + 3 * (blocks - 1)
        return on_air * 9 / RF_BITRATE + (2 * blocks - 1) * self.fdt_s

    def gone_s(self) -> float:
        return self.fwt_s * (1 + self.fwt_retries)


@dataclass
class SimStats:
    frames_in: int = 0
    commands: dict[int, int] = field(default_factory=dict)
    acks_sent: int = 0
    replies_sent: int = 0
    host_acks: int = 0  # ACKs from the host (aborts)
    host_nacks: int = 0  # NACKs from the host (re-sends)
    aborted: int = 0  # replies cancelled by a host ACK or a new command
    bad_frames: int = 0  # host frames with a bad checksum (ignored)
    ignored: int = 0  # frames ignored because the chip slept / was in LowVbat
    wakeups: int = 0
    faults_fired: int = 0
    dropped_bytes: int = 0
    apdus: int = 0


@dataclass(order=True)
class _Event:
    due: float
    seq: int
    fn: Callable[[], None] = field(compare=False)
    token: int = field(compare=False, default=0)


class PN532Sim:
    """A simulated PN532 on a pseudo-terminal.

    Default: opens a pty pair; the driver opens :attr:`port` (or ``link``, a
    symlink to it). ``path=``: attach to an existing tty path instead (an end of
    the wire model); ``fd=``: use an open file descriptor.
    """

    def __init__(
        self,
        *,
        path: str | os.PathLike[str] | None = None,
        fd: int | None = None,
        link: str | os.PathLike[str] | None = None,
        timing: Timing | None = None,
        seed: int | None = None,
        firmware: tuple[int, int, int, int] = (0x32, 0x01, 0x06, 0x07),
        log_size: int = 4000,
        strict_lowvbat: bool = False,
    ) -> None:
        self.timing = timing or Timing()
        # Injectable quirk: the strictest reading of AN10609 at power-on (asleep until
        # a 0x55, then only SAMConfiguration). Applies from the next power-on.
        self.strict_lowvbat = strict_lowvbat
        self.rng = random.Random(seed)
        self.firmware = firmware
        self.stats = SimStats()
        self.log: deque[tuple[float, str, bytes]] = deque(maxlen=log_size)
        self._slave_fd: int | None = None
        self._own_fd = fd is None
        if fd is not None:
            self._fd = fd
            self.port = os.ttyname(fd) if os.isatty(fd) else f"fd:{fd}"
        elif path is not None:
            self._fd = os.open(os.fspath(path), os.O_RDWR | os.O_NOCTTY)
            tty.setraw(self._fd)
            self.port = os.fspath(path)
        else:
            master, slave = os.openpty()
            tty.setraw(slave)
            self._fd, self._slave_fd = master, slave
            self.port = os.ttyname(slave)
        os.set_blocking(self._fd, False)
        self.link: Path | None = None
        if link is not None:
            self.link = Path(link)
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            self.link.symlink_to(self.port)
        self._lock = threading.RLock()
        self._wake = os.pipe()
        self._events: list[_Event] = []
        self._seq = itertools.count()
        self._faults: list[_Injected] = []
        self._inbuf = bytearray()
        self._last_in = 0.0
        self._thread: threading.Thread | None = None
        self._stop = False
        self._power_on()
        self.phone: CardEmulator | None = None
        self.uid = b""

    # ---- lifecycle ---------------------------------------------------------

    def start(self) -> PN532Sim:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pn532-sim", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop = True
        self._poke()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        for fd in (self._fd if self._own_fd else None, self._slave_fd, *self._wake):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def __enter__(self) -> PN532Sim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the field ---------------------------------------------------------

    def place(self, phone: CardEmulator) -> bytes:
        """Put a phone in the field; returns its (fresh, random) UID."""
        with self._lock:
            if self.phone is not None:
                self._remove_locked()
            self.phone = phone
            self.uid = b"\x08" + bytes(self.rng.randrange(256) for _ in range(3))
            self._halted = False
            self._poke()
            return self.uid

    def remove(self) -> None:
        """Take the phone out of the field (an exchange in flight then fails)."""
        with self._lock:
            self._remove_locked()

    def _remove_locked(self) -> None:
        if self.phone is not None and self._listed is self.phone:
            self.phone.deactivate()
        self.phone = None
        self.uid = b""

    # ---- faults ------------------------------------------------------------

    def inject(
        self,
        fault: Fault,
        *,
        times: int = 1,
        command: int | None = None,
        skip: int = 0,
        code: int = 0x01,
        delay_s: float = 1.0,
    ) -> None:
        """Apply `fault` to the next `times` command frames with code `command`
        (any command by default; InDataExchange for RF faults), after letting
        `skip` of them pass."""
        if command is None and fault in _RF_FAULTS:
            command = 0x40
        with self._lock:
            self._faults.append(_Injected(fault, times, command, skip, code, delay_s))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def power_on_reset(self) -> None:
        """As if the chip lost power: LowVbat, asleep, defaults."""
        with self._lock:
            self._power_on()

    @property
    def asleep(self) -> bool:
        return self._asleep

    @property
    def lowvbat(self) -> bool:
        return self._lowvbat

    @property
    def field(self) -> bool:
        return self._field

    def _power_on(self) -> None:
        self._asleep = self.strict_lowvbat
        self._wake_mask = WAKE_HSU
        self._lowvbat = True
        self._wake_lost = 0
        self._flags = 0x14  # automatic RATS and ATR_RES at power-up (pn532.md [inf])
        self._max_retries = [0xFF, 0x01, 0xFF]
        # RFConfiguration 02: RFU, ATR_RES timeout, retry timeout; the defaults are
        # nfcpy's values (UM0701-02 gives 0B 0A as defaults) [assumed].
        self._timings = [0x00, 0x0B, 0x0A]
        self._field = False  # switched on by the commands that need it
        self._regs: dict[int, int] = dict(_CIU_RESET)
        self._fifo: deque[int] = deque(maxlen=64)
        self._last_error = 0
        self._listed: CardEmulator | None = None
        self._listed_iso = False
        self._halted = False
        self._token = 0  # the running command; 0 = none
        self._last_reply: bytes | None = None
        self._mi_out = b""
        self._mi_in = b""
        self._baud_pending: int | None = None
        self._events = []
        self._inbuf = bytearray()

    def _take_fault(self, cmd: int) -> _Injected | None:
        for f in self._faults:
            if f.command is not None and f.command != cmd:
                continue
            if f.skip > 0:
                f.skip -= 1
                continue
            f.times -= 1
            if f.times <= 0:
                self._faults.remove(f)
            self.stats.faults_fired += 1
            return f
        return None

    # ---- event loop --------------------------------------------------------

    def _poke(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake[1], b"x")

    def _at(self, delay: float, fn: Callable[[], None], token: int = 0) -> None:
        heapq.heappush(self._events, _Event(time.monotonic() + delay, next(self._seq), fn, token))

    def _run(self) -> None:
        while not self._stop:
            with self._lock:
                now = time.monotonic()
                timeout = 0.05
                if self._events:
                    timeout = max(0.0, min(timeout, self._events[0].due - now))
            try:
                ready, _, _ = select.select([self._fd, self._wake[0]], [], [], timeout)
            except (OSError, ValueError):
                return
            with self._lock:
                if self._wake[0] in ready:
                    with contextlib.suppress(OSError):
                        os.read(self._wake[0], 512)
                if self._fd in ready:
                    try:
                        data = os.read(self._fd, 4096)
                    except BlockingIOError:
                        data = b""
                    except OSError as e:
                        if e.errno != errno.EIO:  # EIO: nobody has the port open
                            return
                        data = b""
                        time.sleep(0.01)
                    if data:
                        self.log.append((time.monotonic(), "in", data))
                        self._receive(data)
                self._run_due()

    def _run_due(self) -> None:
        now = time.monotonic()
        while self._events and self._events[0].due <= now:
            ev = heapq.heappop(self._events)
            if ev.token and ev.token != self._token:
                continue  # the command was aborted
            ev.fn()

    def _write(self, data: bytes) -> None:
        self.log.append((time.monotonic(), "out", data))
        try:
            n = os.write(self._fd, data)
        except BlockingIOError:
            n = 0
        except OSError:
            return
        self.stats.dropped_bytes += len(data) - n  # a full receiver loses bytes

    def _tx_time(self, n: int) -> float:
        return n * self.timing.byte_s if self.timing.model_uart else 0.0

    # ---- receiving host frames ---------------------------------------------

    def _receive(self, data: bytes) -> None:
        now = time.monotonic()
        if self._inbuf and now - self._last_in > 0.05:
            self._inbuf.clear()  # a partial frame that never completed
        self._last_in = now
        for i, b in enumerate(data):
            if not self._asleep and not self._wake_lost:
                self._inbuf += data[i:]
                break
            if self._wake_lost:
                self._wake_lost -= 1
            elif b == 0x55 and self._wake_mask & WAKE_HSU:
                self._asleep = False
                self._wake_lost = self.timing.wake_lost_bytes
                self.stats.wakeups += 1
        self._parse()

    def _parse(self) -> None:
        buf = self._inbuf
        while True:
            i = buf.find(b"\x00\xff")
            if i < 0:
                del buf[: max(0, len(buf) - 1)]
                return
            del buf[:i]
            if len(buf) < 4:
                return
            ln, lcs = buf[2], buf[3]
            if ln == 0x00 and lcs == 0xFF:
                del buf[:4]
                self._host_ack()
                continue
            if ln == 0xFF and lcs == 0x00:
                del buf[:4]
                self._host_nack()
                continue
            if ln == 0xFF and lcs == 0xFF:
                if len(buf) < 7:
                    return
                if (buf[4] + buf[5] + buf[6]) & 0xFF:
                    self.stats.bad_frames += 1
                    del buf[:2]
                    continue
                length, off = (buf[4] << 8) | buf[5], 7
            elif (ln + lcs) & 0xFF:
                self.stats.bad_frames += 1
                del buf[:2]
                continue
            else:
                length, off = ln, 4
            if len(buf) < off + length + 1:
                return
            body = bytes(buf[off : off + length])
            dcs = buf[off + length]
            del buf[: off + length + 1]
            if length == 0 or (sum(body) + dcs) & 0xFF:
                self.stats.bad_frames += 1
                continue
            self._frame(body)

    def _host_ack(self) -> None:
        self.stats.host_acks += 1
        if self._token:
            self._token = 0
            self.stats.aborted += 1
        if self._baud_pending is not None:
            self.timing.baud = self._baud_pending
            self._baud_pending = None

    def _host_nack(self) -> None:
        self.stats.host_nacks += 1
        if self._last_reply is not None and not self._token:
            reply = self._last_reply
            self._at(self.timing.command_s + self._tx_time(len(reply)),
                     lambda: self._write(reply))

    # ---- commands ----------------------------------------------------------

    def _frame(self, body: bytes) -> None:
        self.stats.frames_in += 1
        if body[0] != 0xD4 or len(body) < 2:
            self.stats.bad_frames += 1
            return
        cmd, params = body[1], body[2:]
        self.stats.commands[cmd] = self.stats.commands.get(cmd, 0) + 1
        if self._asleep:
            self.stats.ignored += 1
            return
        # A pending baud rate is committed only by the ACK right after D5 11
        # (UM0701-02 SetSerialBaudrate); another frame first cancels it [assumed].
        self._baud_pending = None
        allowed = _STRICT_LOWVBAT_OK if self.strict_lowvbat else _LOWVBAT_OK
        if self._lowvbat and cmd not in allowed:
            self.stats.ignored += 1  # LowVbat: SAMConfiguration takes it out
            return
        fault = self._take_fault(cmd)
        kind = fault.fault if fault else None
        if kind is Fault.NO_ACK:
            return
        if kind is Fault.RESET:
            self._power_on()
            return
        t = self.timing
        ack_at = self.rng.uniform(*t.ack_delay_s) + self._tx_time(len(ACK))
        if kind is Fault.NACK:
            self._at(ack_at, lambda: self._write(NACK))
            return
        if self._token:
            self.stats.aborted += 1  # a new command ends the running one
        self._token = token = next(self._seq) + 1
        self._mi_out = b"" if cmd != 0x40 else self._mi_out

        def send_ack() -> None:
            self.stats.acks_sent += 1
            self._write(ACK)

        self._at(ack_at, send_ack, token)
        if kind is Fault.NO_REPLY:
            return
        handler = self._handlers.get(cmd)
        if handler is None:
            self._reply_raw(ack_at + t.command_s, ERROR_FRAME, token)
            return
        try:
            handler(self, cmd, params, ack_at, token, fault)
        except _Syntax:
            self._reply_raw(ack_at + t.command_s, ERROR_FRAME, token)

    def _reply(self, delay: float, cmd: int, data: bytes, token: int,
               fault: _Injected | None, after: Callable[[], None] | None = None) -> None:
        if cmd in (0x40, 0x42) and data:  # GetGeneralStatus reports the last RF status
            self._last_error = data[0] & 0x3F
        frame = encode_frame(0xD5, bytes([cmd + 1]) + data)
        self._reply_raw(delay, frame, token, fault, after)

    def _reply_raw(self, delay: float, frame: bytes, token: int,
                   fault: _Injected | None = None,
                   after: Callable[[], None] | None = None) -> None:
        kind = fault.fault if fault else None
        out = frame
        if kind is Fault.SLOW:
            delay += fault.delay_s if fault else 0.0
        if kind is Fault.ERROR_FRAME:
            out = frame = ERROR_FRAME
        elif kind is Fault.BAD_LCS:
            out = frame[:4] + bytes([frame[4] ^ 0x5A]) + frame[5:]
        elif kind is Fault.BAD_DCS:
            out = frame[:-2] + bytes([frame[-2] ^ 0xA5]) + frame[-1:]
        elif kind is Fault.GARBAGE:
            noise = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(3, 24)))
            out = noise + frame
        delay += self._tx_time(len(out))

        def send() -> None:
            self._token = 0
            self._last_reply = frame
            self.stats.replies_sent += 1
            self._write(out)
            if after is not None:
                after()

        self._at(delay, send, token)

    def _h_diagnose(self, cmd: int, p: bytes, at: float, tok: int, f: _Injected | None) -> None:
        if not p:
            raise _Syntax
        if p[0] == 0x00:  # communication line test: the data echoed
            self._reply(at + self.timing.command_s, cmd, p, tok, f)
        elif p[0] in (0x01, 0x02) and len(p) == 1:
            # ROM and RAM tests: 00 = passed (nfcpy Chipset.diagnose and its test_diagnose)
            self._reply(at + self.timing.command_s, cmd, b"\x00", tok, f)
        else:
            raise _Syntax  # poll target, echo back, attention, antenna: not modelled

    def _h_general_status(self, cmd: int, p: bytes, at: float, tok: int,
                          f: _Injected | None) -> None:
        # D5 05 Err Field NbTg [Tg BrRx BrTx Type]... SAMstatus (UM0701-02
        # GetGeneralStatus; nfcpy needs at least 3 bytes). Type 00 = ISO/IEC 14443 type A
        # 106 kbit/s, SAM status 00 = no SAM [assumed].
        if p:
            raise _Syntax
        data = bytes([self._last_error, 1 if self._field else 0])
        if self._listed is not None and self.phone is self._listed:
            data += bytes([1, 0x01, 0x00, 0x00, 0x00])
        else:
            data += b"\x00"
        self._reply(at + self.timing.command_s, cmd, data + b"\x00", tok, f)

    def _reg_read(self, addr: int) -> int:
        if addr == CIU_FIFO_DATA:
            return self._fifo.popleft() if self._fifo else 0x00
        if addr == CIU_FIFO_LEVEL:
            return len(self._fifo)
        value = self._regs.get(addr, 0x00)
        if addr == CIU_TX_CONTROL:  # Tx1RFEn | Tx2RFEn follow the field
            value = (value & ~0x03) | (0x03 if self._field else 0x00)
        return value

    def _reg_write(self, addr: int, value: int) -> None:
        if addr == CIU_FIFO_DATA:
            self._fifo.append(value)
        elif addr == CIU_FIFO_LEVEL:
            if value & 0x80:  # FlushBuffer
                self._fifo.clear()
        elif addr == CIU_TX_CONTROL:
            self._regs[addr] = value
            if value & 0x03:
                self._field = True
            else:
                self._field = False
                self._field_off()
        else:
            self._regs[addr] = value

    def _h_read_register(self, cmd: int, p: bytes, at: float, tok: int,
                         f: _Injected | None) -> None:
        # D4 06 (addr hi, addr lo)... -> D5 07 value... (no status byte on the PN532:
        # nfcpy pn532.py reg_rsp, its test_read_register '06 0102631A' -> '07 AABB').
        if not p or len(p) % 2:
            raise _Syntax
        vals = bytes(self._reg_read((p[i] << 8) | p[i + 1]) for i in range(0, len(p), 2))
        self._reply(at + self.timing.command_s, cmd, vals, tok, f)

    def _h_write_register(self, cmd: int, p: bytes, at: float, tok: int,
                          f: _Injected | None) -> None:
        # D4 08 (addr hi, addr lo, value)... -> D5 09 (nfcpy test_write_register).
        if not p or len(p) % 3:
            raise _Syntax
        for i in range(0, len(p), 3):
            self._reg_write((p[i] << 8) | p[i + 1], p[i + 2])
        self._reply(at + self.timing.command_s, cmd, b"", tok, f)

    def _h_select(self, cmd: int, p: bytes, at: float, tok: int, f: _Injected | None) -> None:
        # InSelect Tg -> D5 55 status: 00 with the target listed, else 27 [assumed, the
        # same answer as InDataExchange without a target].
        if len(p) != 1:
            raise _Syntax
        ok = (p[0] & 0x3F) == 1 and self._listed is not None and self.phone is self._listed
        self._reply(at + self.timing.command_s, cmd, b"\x00" if ok else b"\x27", tok, f)

    def _h_version(self, cmd: int, p: bytes, at: float, tok: int, f: _Injected | None) -> None:
        self._reply(at + self.timing.command_s, cmd, bytes(self.firmware), tok, f)

    def _h_set_parameters(self, cmd: int, p: bytes, at: float, tok: int,
                          f: _Injected | None) -> None:
        if len(p) != 1:
            raise _Syntax
        self._flags = p[0]
        self._reply(at + self.timing.command_s, cmd, b"", tok, f)

    def _h_sam(self, cmd: int, p: bytes, at: float, tok: int, f: _Injected | None) -> None:
        if not 1 <= len(p) <= 3 or not 1 <= p[0] <= 4:
            raise _Syntax
        self._lowvbat = False
        self._reply(at + self.timing.command_s, cmd, b"", tok, f)

    def _h_power_down(self, cmd: int, p: bytes, at: float, tok: int, f: _Injected | None) -> None:
        if not 1 <= len(p) <= 2:
            raise _Syntax

        mask = p[0]

        def sleep() -> None:
            # WakeUpEnable (UM0701-02 PowerDown): only the enabled sources wake it;
            # for the HSU that is the 0x55 in _receive.
            self._asleep = True
            self._wake_mask = mask
            self._field = False
            self._field_off()

        self._reply(at + self.timing.command_s, cmd, b"\x00", tok, f, after=sleep)

    def _h_baud(self, cmd: int, p: bytes, at: float, tok: int, f: _Injected | None) -> None:
        if len(p) != 1 or p[0] >= len(BAUDS):
            raise _Syntax
        self._baud_pending = BAUDS[p[0]]
        self._reply(at + self.timing.command_s, cmd, b"", tok, f)

    def _h_rf_config(self, cmd: int, p: bytes, at: float, tok: int, f: _Injected | None) -> None:
        if not p or _RF_ITEM_LEN.get(p[0]) != len(p) - 1:
            raise _Syntax
        if p[0] == 0x01:
            # Off means off now, not "stay off": the commands that need the field
            # switch it on again (nfcpy mutes before every poll, pn53x.py; libnfc
            # pn53x.c "turn RF field off first for a better detection rate").
            self._field = bool(p[1] & 0x01)
            if not self._field:
                self._field_off()
        elif p[0] == 0x02:
            self._timings = list(p[1:4])
        elif p[0] == 0x05:
            self._max_retries = list(p[1:4])
        self._reply(at + self.timing.command_s, cmd, b"", tok, f)

    def _field_off(self) -> None:
        if self._listed is not None:
            self._listed.deactivate()
        self._listed = None
        self._halted = False

    def _h_list(self, cmd: int, p: bytes, at: float, tok: int, f: _Injected | None) -> None:
        if len(p) < 2 or p[0] not in (1, 2) or p[1] > 4:
            raise _Syntax
        if self._listed is not None:
            self._listed.deactivate()
            self._listed = None
        retries = self._max_retries[2]
        attempts = None if retries == 0xFF else retries + 1
        type_a = p[1] == 0x00
        t = self.timing
        self._field = True  # polling needs the field (see _h_rf_config)

        def attempt(left: int | None) -> None:
            phone = self.phone if (type_a and self._field) else None
            if phone is not None:
                self._activate(phone, cmd, tok, f)
                return
            if left is not None and left <= 1:
                if type_a:  # the REQA is still in the FIFO (nfcpy sense_tta reads 6339)
                    self._fifo.clear()
                    self._fifo.append(SENS_REQ)
                self._reply(0.0, cmd, b"\x00", tok, f)
                return
            self._at(t.poll_attempt_s, lambda: attempt(None if left is None else left - 1), tok)

        self._at(at, lambda: attempt(attempts), tok)

    def _activate(self, phone: CardEmulator, cmd: int, tok: int, f: _Injected | None) -> None:
        uid = self.uid
        data = bytes([0x01, 0x01]) + phone.sens_res.to_bytes(2, "big")
        data += bytes([phone.sel_res, len(uid)]) + uid
        iso = bool(phone.sel_res & 0x20) and bool(self._flags & 0x10)
        if iso:
            data += bytes(phone.ats)

        def listed() -> None:
            self._listed = phone if self.phone is phone else None
            self._listed_iso = iso
            # After a type A activation: CRC on both ways, 106 kbit/s, type A framing,
            # 100 % ASK (what nfcpy reads and writes back before InCommunicateThru)
            # [assumed values].
            self._regs[CIU_TX_MODE] = CRC_EN
            self._regs[CIU_RX_MODE] = CRC_EN
            self._regs[CIU_TX_AUTO] = 0x40
            self._fifo.clear()
            if self._listed is not None:
                if iso:
                    phone.activate()
                else:
                    phone.select_l3()  # SAK sent; the host sends RATS itself

        self._reply(self.timing.activation_s, cmd, data, tok, f, after=listed)

    def _h_exchange(self, cmd: int, p: bytes, at: float, tok: int, f: _Injected | None) -> None:
        if not p:
            raise _Syntax
        tg, data = p[0], p[1:]
        t = self.timing
        kind = f.fault if f else None
        self._field = True
        phone = self._listed
        if phone is None or (tg & 0x3F) != 1:
            self._reply(at + t.command_s, cmd, b"\x27", tok, f)
            return
        if not data and self._mi_out:  # the host fetches the rest (MI)
            self._send_chunked(at + t.command_s, cmd, self._mi_out, tok, f)
            return
        if tg & 0x40:  # the host chains: more data follows
            self._mi_in += data
            self._reply(at + t.rf_s(len(data)) + t.fdt_s, cmd, b"\x00", tok, f)
            return
        apdu, self._mi_in = self._mi_in + data, b""
        if kind is Fault.RF_ERROR and f is not None:
            self._reply(at + t.rf_s(len(apdu)) + t.fwt_s, cmd, bytes([f.code & 0x3F]), tok, f)
            return
        if kind is Fault.PHONE_LEAVES:
            self._remove_locked()
        # A phone that left, was never sent RATS, or got S(DESELECT) through
        # InCommunicateThru does not answer: status 01 after FWT and the retries.
        if (self.phone is not phone or not self._listed_iso
                or getattr(phone, "iso_state", "protocol") != "protocol"):
            self._reply(at + t.rf_s(len(apdu)) + t.gone_s(), cmd, b"\x01", tok, f)
            return
        self.stats.apdus += 1
        resp = bytes(phone.process_apdu(bytes(apdu)))
        delay = at + t.rf_s(len(apdu)) + phone.processing_time(bytes(apdu)) + t.rf_s(len(resp))

        def fire() -> None:
            # Taken away while the phone was working: the answer never comes.
            if self.phone is not phone:
                self._at(t.gone_s(), lambda: self._reply(0.0, cmd, b"\x01", tok, None), tok)
                return
            self._send_chunked(0.0, cmd, resp, tok, f)

        self._at(delay, fire, tok)

    def _h_thru(self, cmd: int, p: bytes, at: float, tok: int, f: _Injected | None) -> None:
        """InCommunicateThru: the raw frame goes on air (CRC_A added by the CIU when
        TxMode.TxCRCEn is set); the answer comes back as D5 43 00 data, or status 01
        when nothing answers within the retry timeout of RFConfiguration 02 (nfcpy
        sets it before every call). ISO-DEP is the host's business here: the phone
        answers blocks (comptoir_tools.simulators.phone.Phone.rf_receive)."""
        t = self.timing
        kind = f.fault if f else None
        self._field = True
        frame = bytes(p)
        tx_crc = bool(self._regs.get(CIU_TX_MODE, 0) & CRC_EN)
        rx_crc = bool(self._regs.get(CIU_RX_MODE, 0) & CRC_EN)
        sent_at = at + t.air_s(len(frame) + (2 if tx_crc else 0))
        timeout = retry_timeout_s(self._timings[2])

        def status(code: int, wait: float | None) -> None:
            self._last_error = code
            if wait is None:
                return  # no timeout: the chip waits until the host aborts
            self._reply(sent_at + wait, cmd, bytes([code]), tok, f)

        if kind is Fault.RF_ERROR and f is not None:
            status(f.code & 0x3F, t.fdt_s if timeout is None else min(timeout, t.fdt_s))
            return
        if kind is Fault.PHONE_LEAVES:
            self._remove_locked()
        phone = self._listed if (self._listed is not None and self.phone is self._listed) \
            else self.phone
        if phone is not None and getattr(phone, "gone", False):
            self._remove_locked()
            phone = None
        answer = None
        if phone is not None and tx_crc and frame:
            # Without TxCRCEn the phone sees a frame whose last two bytes are no CRC_A:
            # it drops it (ISO/IEC 14443-3), so nothing is sent to it.
            answer = phone.rf_receive(frame, time.monotonic() + sent_at)
        if answer is None or (timeout is not None and answer.delay_s > timeout):
            status(0x01, timeout)
            return
        out = answer.frame + (b"" if rx_crc else crc_a(answer.frame))
        delay = sent_at + answer.delay_s + t.air_s(len(answer.frame) + 2)

        def fire() -> None:
            if self.phone is not phone:  # taken away while answering: no answer comes
                self._last_error = 0x01
                if timeout is not None:
                    wait = max(0.0, timeout - answer.delay_s)
                    self._reply(wait, cmd, b"\x01", tok, f)
                return
            self._last_error = 0
            self._reply(0.0, cmd, b"\x00" + out, tok, f)

        self._at(delay, fire, tok)

    def _send_chunked(self, delay: float, cmd: int, resp: bytes, tok: int,
                      f: _Injected | None) -> None:
        if len(resp) > MAX_EXCHANGE:
            self._mi_out = resp[MAX_EXCHANGE:]
            self._reply(delay, cmd, b"\x40" + resp[:MAX_EXCHANGE], tok, f)
        else:
            self._mi_out = b""
            self._reply(delay, cmd, b"\x00" + resp, tok, f)

    def _h_release(self, cmd: int, p: bytes, at: float, tok: int, f: _Injected | None) -> None:
        if len(p) != 1:
            raise _Syntax
        status = b"\x00"
        if p[0] in (0x00, 0x01) and self._listed is not None:
            self._listed.deactivate()
            self._listed = None
        elif p[0] not in (0x00, 0x01):
            status = b"\x27"
        self._mi_out = b""
        self._reply(at + self.timing.command_s, cmd, status, tok, f)

    _handlers: ClassVar[dict[int, Callable[..., None]]] = {
        0x00: _h_diagnose,
        0x02: _h_version,
        0x04: _h_general_status,
        0x06: _h_read_register,
        0x08: _h_write_register,
        0x10: _h_baud,
        0x12: _h_set_parameters,
        0x14: _h_sam,
        0x16: _h_power_down,
        0x32: _h_rf_config,
        0x40: _h_exchange,
        0x42: _h_thru,
        0x44: _h_release,
        0x4A: _h_list,
        0x52: _h_release,
        0x54: _h_select,
    }


class _Syntax(Exception):
    """A malformed command: the chip answers the error frame."""


class PtyUart:
    """The client end for CPython code that drives the firmware's PN532 driver:
    machine.UART's read semantics (None when nothing waits) over a tty path."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._fd)

    def fileno(self) -> int:
        return self._fd

    def any(self) -> int:
        ready, _, _ = select.select([self._fd], [], [], 0)
        return 1 if ready else 0

    def read(self, n: int = -1) -> bytes | None:
        try:
            data = os.read(self._fd, 4096 if n is None or n < 0 else n)
        except BlockingIOError:
            return None
        return data or None

    def readinto(self, buf: bytearray | memoryview, n: int = -1) -> int | None:
        mv = memoryview(buf)
        if n is not None and 0 <= n < len(mv):
            mv = mv[:n]
        try:
            k = os.readv(self._fd, [mv])
        except BlockingIOError:
            return None
        return k or None

    def write(self, buf: bytes | bytearray | memoryview) -> int:
        mv = memoryview(buf)
        done = 0
        while done < len(mv):
            try:
                done += os.write(self._fd, mv[done:])
            except BlockingIOError:
                select.select([], [self._fd], [], 0.01)
        return done

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def __enter__(self) -> PtyUart:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
