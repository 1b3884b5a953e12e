# The PN532 driver: commands, ACK/NACK handling, recovery, over any transport
# of pn532.transport. Frames per NXP UM0701-02; facts in shared/notes/pn532.md.
#
#   pn = PN532(UartTransport(uart))
#   pn.init()                        # wake-up, SAM, version check, finite retries
#   t = pn.list_passive_target()     # a Target (preallocated) or None
#   n = pn.exchange(apdu, len(apdu), out)
#   pn.release()
#
# All buffers are allocated once here. A reply is returned as a memoryview into
# the receive buffer: valid until the next command.
from comptoir_link.compat import const, ticks_add, ticks_diff, ticks_ms
from pn532 import frame
from pn532.errors import (
    PN532BadReply,
    PN532FrameError,
    PN532NoAck,
    PN532NotFound,
    PN532SyntaxError,
    PN532Timeout,
    ResponseTooLong,
    status_error,
)
from pn532.transport import sleep_ms

# Command codes (the reply's code is the command's + 1).
DIAGNOSE = const(0x00)
GET_FIRMWARE_VERSION = const(0x02)
SET_PARAMETERS = const(0x12)
SAM_CONFIGURATION = const(0x14)
POWER_DOWN = const(0x16)
RF_CONFIGURATION = const(0x32)
IN_DATA_EXCHANGE = const(0x40)
IN_LIST_PASSIVE_TARGET = const(0x4A)
IN_RELEASE = const(0x52)

# SetParameters bits.
PARAM_AUTO_ATR_RES = const(0x04)
PARAM_AUTO_RATS = const(0x10)
# RFConfiguration items.
RF_FIELD = const(0x01)
RF_TIMINGS = const(0x02)
RF_MAX_RETRIES = const(0x05)

MAX_EXCHANGE = const(262)  # data bytes per InDataExchange, each way
BRTY_106A = const(0x00)
IC_PN532 = const(0x32)
SAK_ISO14443_4 = const(0x20)

_MAX_SKIP = const(300)  # noise bytes tolerated before a start code
_MAX_NACKS = const(2)  # re-requests of one corrupt reply
_MI_MAX = const(64)  # InDataExchange continuations (MI) in one exchange
_ATS_MAX = const(64)


class Target:
    """The target found by InListPassiveTarget (one, preallocated, reused)."""

    def __init__(self):
        self.tg = 0
        self.sens_res = 0
        self.sel_res = 0
        self.uid = bytearray(10)
        self.uid_len = 0
        self.ats = bytearray(_ATS_MAX)
        self.ats_len = 0

    @property
    def iso_dep(self):
        # SAK bit 0x20 = ISO/IEC 14443-4 compliant. Not SAK == 0x20: phones
        # answer 0x60 too.
        return bool(self.sel_res & SAK_ISO14443_4)


class PN532:
    def __init__(self, transport, ack_timeout_ms=100, passive_retries=2):
        self.transport = transport
        self.ack_timeout_ms = ack_timeout_ms
        self.passive_retries = passive_retries
        self._tx = bytearray(frame.MAX_FRAME)
        self._txmv = memoryview(self._tx)
        self._rx = bytearray(frame.MAX_FRAME + 1)
        self._rxmv = memoryview(self._rx)
        self._body = bytearray(frame.MAX_BODY)
        self._bodymv = memoryview(self._body)
        self._scratch = bytearray(32)
        self._have = 0
        self._off = 0
        self._len = 0
        self._asleep = True  # LowVbat at power-on: wake up before the first command
        self.target = Target()
        self.version = None
        # Counters, for tests and the bench.
        self.nacks_sent = 0
        self.resends = 0
        self.aborts = 0
        self.stale = 0  # late answers of aborted commands skipped
        # Set by an abort until the next ACK: an answer that comes before the next
        # command's ACK may be the aborted command's own (same code), late.
        self._aborted = False
        self.noise = 0  # bytes dropped before a start code

    # ---- frame level -------------------------------------------------------

    def _fill(self, n, deadline):
        t = self.transport
        while self._have < n:
            k = t.read_into(self._rxmv[self._have :], n - self._have)
            if k:
                self._have += k
                continue
            if ticks_diff(deadline, ticks_ms()) <= 0:
                return False
            sleep_ms(1)
        return True

    def _read_frame(self, deadline, hint):
        """Read one frame into _rx (starting at its start code); return its kind."""
        t = self.transport
        while not t.ready():
            if ticks_diff(deadline, ticks_ms()) <= 0:
                raise PN532Timeout("no frame from the PN532")
            sleep_ms(1)
        t.begin_read(hint)
        try:
            return self._sync_and_read(deadline)
        finally:
            t.end_read()

    def _sync_and_read(self, deadline):
        rx = self._rx
        self._have = 0
        skipped = 0
        # 6 bytes = the smallest frame (ACK/NACK with preamble): never more
        # than the frame being read.
        if not self._fill(6, deadline):
            if self._have == 0:
                raise PN532Timeout("no frame from the PN532")
            raise PN532FrameError("truncated frame")
        while True:
            i = frame.find_start(rx, self._have)
            if i >= 0:
                break
            keep = 1 if rx[self._have - 1] == 0x00 else 0
            skipped += self._have - keep
            if skipped > _MAX_SKIP:
                raise PN532FrameError("no start code in %d bytes" % skipped)
            rx[0] = 0x00
            self._have = keep
            if not self._fill(2, deadline):
                raise PN532FrameError("noise, then silence")
        self.noise += skipped + i
        if i:
            for k in range(self._have - i):
                rx[k] = rx[k + i]
            self._have -= i
        while True:
            total = frame.needed(rx, self._have)
            if total <= self._have:
                break
            if total > len(rx):
                raise PN532FrameError("frame longer than the buffer")
            if not self._fill(total, deadline):
                raise PN532FrameError("truncated frame")
        kind, self._off, self._len = frame.decode(rx, total)
        return kind

    def _drain(self, quiet_ms=0):
        """Drop what waits on the line; with quiet_ms, until it stays quiet."""
        t = self.transport
        for _ in range(20):
            k = t.drain(self._scratch)
            if not quiet_ms:
                return
            if not k:
                sleep_ms(quiet_ms)
                if not t.ready():
                    return

    def _abort(self):
        # A host ACK aborts the command the chip is running (UM0701-02 §6.2.1.3).
        self.transport.write(frame.ACK)
        self.aborts += 1
        self._aborted = True

    def _call(self, nparams, timeout_ms):
        """Send body[0] (command) + body[1:1+nparams]; return the reply's data."""
        cmd = self._body[0]
        if self._asleep:
            self.transport.wakeup()
            self._asleep = False
        flen = frame.encode(self._tx, frame.TFI_HOST, self._body, 1 + nparams)
        self._drain()
        got_reply = self._send(cmd, flen)
        return self._reply(cmd, timeout_ms, got_reply)

    def _send(self, cmd, flen):
        """Send the frame, wait for the ACK; resend once. True if the chip
        answered with the reply itself instead of an ACK (it happens)."""
        err = None  # type: Exception | None
        for attempt in range(2):
            if attempt:
                self.resends += 1
            self.transport.write(self._txmv[:flen])
            deadline = ticks_add(ticks_ms(), self.ack_timeout_ms)
            try:
                kind = self._read_frame(deadline, 6)
                while kind == frame.DATA_FRAME and self._aborted:
                    # Before the ACK, just after an abort: the aborted command's late
                    # answer (an exchange's has the same code as the next one's). Skip.
                    self.stale += 1
                    kind = self._read_frame(deadline, 6)
            except PN532Timeout:
                err = PN532NoAck("no ACK to command 0x%02X" % cmd)
                self._abort()
                continue
            except PN532FrameError as e:
                err = e
                self._abort()
                self._drain(2)
                continue
            if kind == frame.ACK_FRAME:
                self._aborted = False
                return False
            if kind == frame.ERROR:
                raise PN532SyntaxError("PN532 rejected command 0x%02X" % cmd)
            if kind == frame.DATA_FRAME and self._is_reply(cmd):
                return True
            # NACK (the chip asks for the frame again) or a stale frame.
            err = PN532BadReply("expected ACK to 0x%02X" % cmd)
            self._drain(2)
        if err is None:
            err = PN532NoAck("no ACK to command 0x%02X" % cmd)
        raise err

    def _is_reply(self, cmd):
        rx = self._rx
        off = self._off
        return self._len >= 2 and rx[off] == frame.TFI_CHIP and rx[off + 1] == cmd + 1

    def _reply(self, cmd, timeout_ms, have_it):
        deadline = ticks_add(ticks_ms(), timeout_ms)
        nacks = 0
        for _ in range(_MAX_NACKS + 4):
            if not have_it:
                try:
                    kind = self._read_frame(deadline, frame.MAX_FRAME)
                except PN532FrameError:
                    if nacks >= _MAX_NACKS:
                        self._abort()
                        raise
                    nacks += 1
                    self._drain(2)
                    self.transport.write(frame.NACK)
                    self.nacks_sent += 1
                    # The chip re-sends the reply it holds: give it fresh time.
                    d2 = ticks_add(ticks_ms(), self.ack_timeout_ms)
                    if ticks_diff(d2, deadline) > 0:
                        deadline = d2
                    continue
                except PN532Timeout:
                    self._abort()
                    raise PN532Timeout("no reply to command 0x%02X" % cmd)
                if kind == frame.ERROR:
                    raise PN532SyntaxError("PN532 rejected command 0x%02X" % cmd)
                if kind != frame.DATA_FRAME:
                    continue  # a stray ACK/NACK
            have_it = False
            if self._is_reply(cmd):
                off = self._off
                return self._rxmv[off + 2 : off + self._len]
            # A stale reply to an aborted command: keep reading.
        self._abort()
        raise PN532BadReply("no reply to 0x%02X among the frames received" % cmd)

    def command(self, cmd, params=b"", timeout_ms=100):
        """Run any command; return its reply data (after D5 cmd+1)."""
        n = len(params)
        self._body[0] = cmd
        if n:
            self._body[1 : 1 + n] = params
        return self._call(n, timeout_ms)

    # ---- commands ----------------------------------------------------------

    def firmware_version(self):
        r = self.command(GET_FIRMWARE_VERSION)
        if len(r) != 4:
            raise PN532BadReply("GetFirmwareVersion: %d bytes" % len(r))
        return (r[0], r[1], r[2], r[3])

    def sam_configuration(self, mode=0x01, timeout=0x14, irq=0x01):
        b = self._body
        b[0] = SAM_CONFIGURATION
        b[1] = mode
        b[2] = timeout
        b[3] = irq
        self._call(3, 100)

    def set_parameters(self, flags):
        b = self._body
        b[0] = SET_PARAMETERS
        b[1] = flags
        self._call(1, 100)

    def rf_configuration(self, item, data):
        n = len(data)
        b = self._body
        b[0] = RF_CONFIGURATION
        b[1] = item
        b[2 : 2 + n] = data
        self._call(1 + n, 100)

    def set_max_retries(self, atr=0xFF, psl=0x01, passive=0x02):
        # The default passive-activation retries FF make InListPassiveTarget
        # wait for a card forever; a finite number answers D5 4B 00 instead.
        b = self._body
        b[0] = RF_CONFIGURATION
        b[1] = RF_MAX_RETRIES
        b[2] = atr
        b[3] = psl
        b[4] = passive
        self._call(4, 100)

    def set_timings(self, atr_res=0x0B, retry=0x0A):
        # Index n = 100 us * 2^(n-1): 0B = 102.4 ms, 0A = 51.2 ms.
        b = self._body
        b[0] = RF_CONFIGURATION
        b[1] = RF_TIMINGS
        b[2] = 0x00
        b[3] = atr_res
        b[4] = retry
        self._call(4, 100)

    def rf_field(self, on):
        b = self._body
        b[0] = RF_CONFIGURATION
        b[1] = RF_FIELD
        b[2] = 0x01 if on else 0x00
        self._call(2, 100)

    def power_down(self, wake_sources=0xB0):
        """PowerDown (wake on HSU/SPI/I2C by default); the next command wakes it."""
        b = self._body
        b[0] = POWER_DOWN
        b[1] = wake_sources
        r = self._call(1, 100)
        if len(r) >= 1 and r[0] & 0x3F:
            raise status_error(r[0] & 0x3F)
        self._asleep = True

    def init(self):
        """Wake the chip and configure it for phones: SAM normal mode, version
        check, automatic RATS, finite retries, RF timings. Safe to repeat
        (recovery re-runs it)."""
        self._asleep = True
        self.target.tg = 0
        self.sam_configuration()  # leaves LowVbat (AN10609)
        ic, ver, rev, support = self.firmware_version()
        if ic != IC_PN532:
            raise PN532NotFound("IC 0x%02X is not a PN532" % ic)
        self.version = (ver, rev, support)
        self.set_parameters(PARAM_AUTO_ATR_RES | PARAM_AUTO_RATS)
        self.set_max_retries(0xFF, 0x01, self.passive_retries)
        self.set_timings()

    def list_passive_target(self, timeout_ms=300):
        """Look for one ISO 14443 type A target at 106 kbit/s. Returns
        self.target, or None when the finite retries found nothing."""
        b = self._body
        b[0] = IN_LIST_PASSIVE_TARGET
        b[1] = 0x01  # at most one target
        b[2] = BRTY_106A
        r = self._call(2, timeout_ms)
        t = self.target
        if len(r) < 1:
            raise PN532BadReply("InListPassiveTarget: empty reply")
        if r[0] == 0:
            t.tg = 0
            return None
        n = len(r)
        if n < 6:
            raise PN532BadReply("InListPassiveTarget: %d bytes" % n)
        ul = r[5]
        if ul > 10 or 6 + ul > n:
            raise PN532BadReply("InListPassiveTarget: UID length %d" % ul)
        t.tg = r[1]
        t.sens_res = (r[2] << 8) | r[3]
        t.sel_res = r[4]
        t.uid[0:ul] = r[6 : 6 + ul]
        t.uid_len = ul
        t.ats_len = 0
        p = 6 + ul
        if p < n:
            tl = r[p]  # the ATS starts with its own length byte TL
            if tl < 1 or p + tl > n:
                raise PN532BadReply("InListPassiveTarget: ATS length %d" % tl)
            k = tl if tl <= _ATS_MAX else _ATS_MAX
            t.ats[0:k] = r[p : p + k]
            t.ats_len = k
        return t

    def exchange(self, data, n, out, timeout_ms=500):
        """InDataExchange with the listed target: data[0:n] out, the answer in
        out; returns its length. Follows MI (more information) with empty
        InDataExchange commands. Raises the named error of a status byte."""
        if n > MAX_EXCHANGE:
            raise ValueError("InDataExchange carries at most 262 bytes")
        b = self._body
        tg = self.target.tg or 1
        b[0] = IN_DATA_EXCHANGE
        b[1] = tg
        if n:
            b[2 : 2 + n] = data if n == len(data) else memoryview(data)[:n]
        r = self._call(1 + n, timeout_ms)
        got = 0
        cap = len(out)
        for _ in range(_MI_MAX):
            if len(r) < 1:
                raise PN532BadReply("InDataExchange: no status")
            st = r[0]
            if st & 0x3F:
                raise status_error(st & 0x3F)
            k = len(r) - 1
            if got + k > cap:
                raise ResponseTooLong("InDataExchange answer over %d bytes" % cap)
            if k:
                out[got : got + k] = r[1:]
                got += k
            if not st & 0x40:
                return got
            b[0] = IN_DATA_EXCHANGE
            b[1] = tg
            r = self._call(1, timeout_ms)
        raise PN532BadReply("InDataExchange: MI chain too long")

    def release(self, tg=0):
        b = self._body
        b[0] = IN_RELEASE
        b[1] = tg
        r = self._call(1, 100)
        self.target.tg = 0
        if len(r) < 1:
            raise PN532BadReply("InRelease: no status")
        if r[0] & 0x3F:
            raise status_error(r[0] & 0x3F)
