"""Wire model: a paced, fault-injecting serial cable between two pseudo-terminals.

The software twin runs the firmware (MicroPython unix port) on end A and the host
daemon (pyserial) on end B. Between them this module relays bytes as a UART line
would: 8N1, so one byte takes ``10 / baud`` seconds, each direction an independent
line. Faults (bit flips, drops, duplicates, garbage bursts, a cut cable, an
unplugged USB-serial adapter) are injected from a seeded RNG so that a failing
scenario replays identically.

Timing model, per direction: a chunk read from the sending end at time ``t`` starts
on the line at ``t0 = max(t, line free)``; its byte ``k`` (1-based) is written to the
receiving end no earlier than ``t0 + k * 10 / baud``. The relay wakes at least every
``granularity`` seconds during a burst and writes every byte whose time has come; the
last queued byte gets an exact wake-up (sleep, then a short spin), so the end of a
frame is not delayed by the batching.

What ``unplug()`` looks like to a pyserial client holding end B (checked in the
tests): ``read()`` and ``write()`` raise ``serial.SerialException`` (an ``OSError``;
read: "device reports readiness to read but returned no data", write: EIO);
``in_waiting`` raises ``OSError`` (EIO); ``reset_input_buffer()`` raises
``termios.error``; ``close()`` works. The symlink is gone until ``replug()``.

See docs/wire-model.md for what is and is not modelled.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import os
import random
import select
import sys
import termios
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Literal, TypeVar, cast

__all__ = [
    "BITS_PER_BYTE",
    "Direction",
    "End",
    "FaultConfig",
    "LineCounters",
    "PacedLine",
    "Target",
    "WireModel",
    "main",
]

Direction = Literal["a2b", "b2a"]
Target = Literal["a2b", "b2a", "both"]
End = Literal["a", "b"]

#: 8N1: start bit, 8 data bits, stop bit.
BITS_PER_BYTE = 10

_DIRECTIONS: tuple[Direction, Direction] = ("a2b", "b2a")
# Bytes queued on a line before we stop reading the sender: the sender's write() then
# blocks on the kernel pty buffer (~18 KB), as a real write blocks on the tty TX buffer.
_TX_QUEUE = 4096
# Resume reading only below this: reading a few bytes per wake-up while a long write is
# pending would keep select() returning at once and burn a core.
_TX_LOW = _TX_QUEUE // 2
# select() wake-up jitter on the CI VMs is ~50-100 µs even with 1 µs timer slack, so
# the exact wake-up for the last queued byte sleeps until this much before and spins.
_SPIN = 150e-6
# Tolerance for float rounding when deciding whether a byte's time has come.
_EPS = 1e-9

_T = TypeVar("_T")


@dataclass
class LineCounters:
    """Byte counters of one direction.

    Invariant (checked by the tests)::

        bytes_out + pending == bytes_in - dropped + duplicated + garbage - lost - overrun
    """

    bytes_in: int = 0  # read from the sending end
    bytes_out: int = 0  # written to the receiving end
    dropped: int = 0  # removed by the drop probability
    corrupted: int = 0  # delivered with one bit flipped
    duplicated: int = 0  # extra copies inserted by the duplicate probability
    garbage: int = 0  # injected by inject_garbage()
    lost: int = 0  # due while cut or unplugged, or in the adapter when unplugged
    overrun: int = 0  # receiver did not drain its pty: discarded


@dataclass(frozen=True)
class FaultConfig:
    """Per-byte fault probabilities of one direction (0 disables)."""

    bit_flip: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0


class PacedLine:
    """The timing and fault core of one direction, free of I/O so it can be tested alone.

    ``accept()`` puts bytes read from the sender on the line at time ``now``;
    ``take_due(now)`` returns the bytes whose stop bit has been sent by ``now``. Byte
    ``i`` is due at ``max(arrival_i, due_{i-1}) + 10 / baud``, however the calls are
    interleaved (bytes already due when new ones arrive are set aside first, so a late
    ``take_due`` never lets new bytes use line time from before they arrived).
    """

    def __init__(self, baud: int, rng: random.Random | None = None) -> None:
        self.byte_time = BITS_PER_BYTE / _check_baud(baud)
        self.rng = rng if rng is not None else random.Random()
        self.faults = FaultConfig()
        self.counters = LineCounters()
        self.queue = bytearray()  # on the line, not yet due
        self._ready = bytearray()  # due, not yet taken
        # Queue non-empty: when the head byte's start bit began. Empty: when the line
        # became free (end of the last byte's stop bit).
        self.head_start = float("-inf")

    def __len__(self) -> int:
        return len(self.queue) + len(self._ready)

    def set_baud(self, baud: int, now: float) -> None:
        """Change the rate at ``now``: bytes due by then keep the old timing."""
        self._advance(now)
        self.byte_time = BITS_PER_BYTE / _check_baud(baud)

    def _advance(self, now: float) -> None:
        """Move the bytes due by ``now`` from the line to the ready buffer."""
        if not self.queue:
            self.head_start = max(self.head_start, now)
            return
        n = int(min((now - self.head_start) / self.byte_time + _EPS, len(self.queue)))
        if n <= 0:
            return
        self._ready += self.queue[:n]
        del self.queue[:n]
        self.head_start += n * self.byte_time
        if not self.queue:
            self.head_start = max(self.head_start, now)

    def accept(self, data: bytes, now: float) -> None:
        """Queue bytes written by the sender at ``now``, applying the configured faults."""
        c = self.counters
        c.bytes_in += len(data)
        self._advance(now)
        f = self.faults
        if not (f.bit_flip or f.drop or f.duplicate):
            self.queue += data
            return
        # One draw per enabled fault per byte: the outcome depends only on the seed and
        # the byte stream, not on how the stream was chunked.
        rnd = self.rng.random
        out = self.queue
        for b in data:
            if f.drop and rnd() < f.drop:
                c.dropped += 1
                continue
            if f.bit_flip and rnd() < f.bit_flip:
                b ^= 1 << self.rng.randrange(8)
                c.corrupted += 1
            out.append(b)
            if f.duplicate and rnd() < f.duplicate:
                out.append(b)
                c.duplicated += 1

    def inject(self, data: bytes, now: float) -> None:
        """Insert a noise burst now: right after the byte being transmitted, if any."""
        self._advance(now)
        at = 1 if self.queue else 0
        self.queue[at:at] = data
        self.counters.garbage += len(data)

    def take_due(self, now: float) -> bytes:
        """Remove and return the bytes whose transmission has completed by ``now``."""
        self._advance(now)
        out = bytes(self._ready)
        self._ready.clear()
        return out

    def clear(self) -> int:
        """Discard everything not yet taken (lost on the wire); return how many."""
        n = len(self)
        self.queue.clear()
        self._ready.clear()
        return n

    def next_due(self) -> float | None:
        """When take_due() next returns bytes (-inf: already), or None if idle."""
        if self._ready:
            return float("-inf")
        return self.head_start + self.byte_time if self.queue else None

    def last_due(self) -> float | None:
        """When the last byte on the line completes (-inf: all due), or None if idle."""
        if self.queue:
            return self.head_start + len(self.queue) * self.byte_time
        return float("-inf") if self._ready else None


def _check_baud(baud: int) -> int:
    if not isinstance(baud, int) or baud <= 0:
        raise ValueError(f"baud must be a positive int, got {baud!r}")
    return baud


def _set_raw(fd: int) -> None:
    """cfmakeraw(): 8-bit clean, no echo, no CR/LF mapping, no signals, no XON/XOFF."""
    attrs = termios.tcgetattr(fd)
    attrs[0] &= ~(
        termios.IGNBRK
        | termios.BRKINT
        | termios.PARMRK
        | termios.ISTRIP
        | termios.INLCR
        | termios.IGNCR
        | termios.ICRNL
        | termios.IXON
        | termios.IXOFF
        | termios.IXANY
        | termios.INPCK
    )
    attrs[1] &= ~termios.OPOST
    attrs[2] &= ~(termios.CSIZE | termios.PARENB)
    attrs[2] |= termios.CS8 | termios.CREAD | termios.CLOCAL
    attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _reduce_timer_slack() -> None:
    # Linux pads sleeps by 50 µs of "timer slack" per thread; 1 µs suits a line clock.
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK


class _PtyEnd:
    """One pty pair and its published symlink; the model keeps the slave fd open."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master: int | None = None
        self.slave: int | None = None
        self.device: str | None = None

    def open(self) -> None:
        master, slave = os.openpty()  # both non-inheritable: children cannot pin the pty
        try:
            _set_raw(slave)
            os.set_blocking(master, False)
            device = os.ttyname(slave)
            # Atomic replace, so a client polling the path never sees it missing/stale.
            tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(device, tmp)
            os.replace(tmp, self.link)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        self.master, self.slave, self.device = master, slave, device

    def close(self) -> None:
        # Remove the link only if it is still ours (another model may have taken the name).
        with contextlib.suppress(OSError):
            if self.device is not None and os.readlink(self.link) == self.device:
                self.link.unlink()
        for fd in (self.master, self.slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self.slave = self.device = None


class WireModel:
    """A serial cable between two ptys: end A (board side) and end B (host side).

    Create, ``start()``, connect the endpoints to ``path_a`` / ``path_b``, ``stop()``
    (or use it as a context manager). Control methods are thread-safe; they execute on
    the relay thread, in order, between two line events.
    """

    def __init__(
        self,
        baud: int,
        link_dir: str | Path,
        name: str = "wire",
        seed: int | None = None,
        *,
        granularity: float = 250e-6,
        realtime: bool = False,
    ) -> None:
        """
        Args:
            baud: line rate in bit/s (8N1, so baud / 10 bytes per second).
            link_dir: directory for the ``<name>-a`` / ``<name>-b`` symlinks (created).
            name: prefix of the symlink names.
            seed: RNG seed for faults and garbage; None for a random one.
            granularity: longest sleep in the middle of a burst. Bytes inside a burst
                may arrive up to this much (plus wake-up jitter) after their line time;
                the last queued byte is always woken for exactly. Larger values
                cost less CPU while streaming (~20% of a core at 250 µs).
            realtime: try to run the relay thread SCHED_FIFO (needs CAP_SYS_NICE;
                silently falls back, see ``realtime_active``). On a loaded machine an
                ordinary thread's wake-up can wait a whole scheduler slice (1-8 ms).
                It helps only if the relay does not share the GIL with busy threads:
                for benchmarks run ``python -m comptoir_tools.simulators.wire --realtime``.
        """
        self._baud = _check_baud(baud)
        self._granularity = granularity
        self._realtime = realtime
        self.realtime_active = False
        self._seed = seed
        link_dir = Path(link_dir)
        link_dir.mkdir(parents=True, exist_ok=True)
        self._ends: dict[End, _PtyEnd] = {
            "a": _PtyEnd(link_dir / f"{name}-a"),
            "b": _PtyEnd(link_dir / f"{name}-b"),
        }
        self._lines: dict[Direction, PacedLine] = {
            d: PacedLine(baud, self._rng(d)) for d in _DIRECTIONS
        }
        self._garbage_rng = self._rng("garbage")
        self._cut = False
        self._cut_until: float | None = None
        self._stopping = False
        self._lock = threading.Lock()
        self._commands: SimpleQueue[tuple[Callable[[float], object], Future[object]]] = (
            SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=f"wire-{name}", daemon=True)
        self._started = False
        self._thread_ready = threading.Event()
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        try:
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            for end in self._ends.values():
                end.open()
        except BaseException:
            self._close_fds()
            raise

    def _rng(self, stream: str) -> random.Random:
        # Independent streams, so enabling a fault in one direction leaves the other's
        # sequence unchanged.
        if self._seed is None:
            return random.Random()
        return random.Random(f"{self._seed}:{stream}")

    # ---- properties -------------------------------------------------------------

    @property
    def path_a(self) -> Path:
        """Symlink to the board-side pty (stable across the model's life)."""
        return self._ends["a"].link

    @property
    def path_b(self) -> Path:
        """Symlink to the host-side pty (absent while unplugged; stable across replugs)."""
        return self._ends["b"].link

    @property
    def device_a(self) -> str | None:
        """Current /dev/pts path of end A."""
        return self._ends["a"].device

    @property
    def device_b(self) -> str | None:
        """Current /dev/pts path of end B, None while unplugged."""
        return self._ends["b"].device

    @property
    def baud(self) -> int:
        """Line rate in bit/s; assigning it calls ``set_baud()``."""
        return self._baud

    @baud.setter
    def baud(self, value: int) -> None:
        self.set_baud(value)

    @property
    def is_cut(self) -> bool:
        """True between ``cut()``/``cut_for()`` and the restore."""
        return self._cut

    @property
    def plugged(self) -> bool:
        """False between ``unplug()`` and ``replug()``."""
        return self._ends["b"].master is not None

    @property
    def running(self) -> bool:
        """True while the relay thread is alive."""
        return self._thread.is_alive()

    # ---- lifecycle --------------------------------------------------------------

    def start(self) -> WireModel:
        """Start relaying (idempotent). Returns self."""
        if self._closed:
            raise RuntimeError("WireModel is stopped; create a new one")
        if not self._started:
            self._started = True
            self._thread.start()
            self._thread_ready.wait(timeout=5.0)  # so realtime_active is settled
        return self

    def stop(self) -> None:
        """Stop the relay thread, close every fd and remove the symlinks (idempotent)."""
        if self._closed:
            return
        if self._thread.is_alive():
            self._submit(self._cmd_stop)
            self._thread.join(timeout=5.0)
            if self._thread.is_alive():  # pragma: no cover - would be a relay bug
                raise RuntimeError("wire relay thread did not stop")
        with self._lock:
            self._closed = True
            self._close_fds()

    def __enter__(self) -> WireModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _close_fds(self) -> None:
        for end in self._ends.values():
            end.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # ---- control ----------------------------------------------------------------

    def set_baud(self, baud: int) -> None:
        """Change the rate of both lines; bytes already due leave at the old rate."""
        _check_baud(baud)

        def cmd(now: float) -> None:
            self._service(now)
            self._baud = baud
            for line in self._lines.values():
                line.set_baud(baud, now)

        self._submit(cmd)

    def set_faults(
        self,
        direction: Target = "both",
        *,
        bit_flip: float | None = None,
        drop: float | None = None,
        duplicate: float | None = None,
    ) -> None:
        """Set per-byte fault probabilities; None leaves a setting unchanged.

        Order per byte: drop, else flip one random bit, then maybe duplicate it.
        """
        for p in (bit_flip, drop, duplicate):
            if p is not None and not 0.0 <= p <= 1.0:
                raise ValueError(f"probability out of [0, 1]: {p}")

        def cmd(now: float) -> None:
            for d in self._targets(direction):
                f = self._lines[d].faults
                self._lines[d].faults = FaultConfig(
                    bit_flip=f.bit_flip if bit_flip is None else bit_flip,
                    drop=f.drop if drop is None else drop,
                    duplicate=f.duplicate if duplicate is None else duplicate,
                )

        self._submit(cmd)

    def clear_faults(self, direction: Target = "both") -> None:
        """Disable the probabilistic faults."""
        self.set_faults(direction, bit_flip=0.0, drop=0.0, duplicate=0.0)

    def faults(self, direction: Direction) -> FaultConfig:
        return self._lines[direction].faults

    def inject_garbage(self, direction: Target, data: int | bytes) -> bytes:
        """Insert a burst on the line now (ahead of bytes not yet delivered).

        ``data`` is a byte count (random bytes from the seeded RNG) or the exact bytes.
        Returns the injected bytes (the same burst for both directions with "both").
        """

        def cmd(now: float) -> bytes:
            burst = self._garbage_rng.randbytes(data) if isinstance(data, int) else bytes(data)
            self._service(now)
            for d in self._targets(direction):
                self._lines[d].inject(burst, now)
            return burst

        return self._submit(cmd)

    def cut(self) -> None:
        """Open the line: every byte whose stop bit falls while cut is lost, both ways."""

        def cmd(now: float) -> None:
            self._service(now)
            self._cut, self._cut_until = True, None

        self._submit(cmd)

    def restore(self) -> None:
        """Close the line again; bytes still being sent are delivered from now on."""

        def cmd(now: float) -> None:
            self._service(now)
            self._cut, self._cut_until = False, None

        self._submit(cmd)

    def cut_for(self, seconds: float) -> None:
        """Cut now and restore after ``seconds`` (on the relay clock; returns at once)."""

        def cmd(now: float) -> None:
            self._service(now)
            self._cut, self._cut_until = True, now + seconds

        self._submit(cmd)

    def unplug(self) -> None:
        """Simulate pulling the USB-serial adapter: end B's pty vanishes.

        The B master and the model's slave fd are closed (a client holding the slave
        gets EOF/EIO, see the module docstring), the symlink is removed, bytes on the
        way to B or still coming from B are lost. End A is untouched. Idempotent.
        """

        def cmd(now: float) -> None:
            if not self.plugged:
                return
            self._service(now)
            b2a = self._lines["b2a"]
            b2a.counters.lost += b2a.clear()  # the adapter's buffers lose power too
            self._ends["b"].close()

        self._submit(cmd)

    def replug(self) -> None:
        """Plug the adapter back: a new pty behind the same ``path_b``. Idempotent."""

        def cmd(now: float) -> None:
            if self.plugged:
                return
            self._service(now)
            self._ends["b"].open()

        self._submit(cmd)

    def flush_input(self, end: End) -> None:
        """Discard what end ``end`` has received but not read (e.g. the twin restarting
        the firmware: a real UART comes up empty, a pty keeps its buffer)."""

        def cmd(now: float) -> None:
            pty = self._ends[end]
            if pty.slave is None:
                return
            self._service(now)
            termios.tcflush(pty.slave, termios.TCIFLUSH)

        self._submit(cmd)

    # ---- observation ------------------------------------------------------------

    def counters(self, direction: Direction) -> LineCounters:
        """A consistent snapshot of one direction's counters."""
        with self._lock:
            return replace(self._lines[direction].counters)

    def reset_counters(self) -> None:
        def cmd(now: float) -> None:
            for line in self._lines.values():
                line.counters = LineCounters()

        self._submit(cmd)

    def pending(self, direction: Direction) -> int:
        """Bytes on the line, not yet delivered (kernel pty buffers not included)."""
        with self._lock:
            return len(self._lines[direction])

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until both lines are empty and no sender has unread bytes; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self._submit(self._cmd_is_idle):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)

    # ---- relay thread -----------------------------------------------------------

    def _targets(self, target: Target) -> Sequence[Direction]:
        if target == "both":
            return _DIRECTIONS
        if target not in _DIRECTIONS:
            raise ValueError(f"direction must be 'a2b', 'b2a' or 'both', got {target!r}")
        return (target,)

    def _submit(self, fn: Callable[[float], _T]) -> _T:
        """Run ``fn(now)`` on the relay thread (or inline when it is not running)."""
        if self._closed:
            raise RuntimeError("WireModel is stopped")
        if not self._thread.is_alive() or threading.current_thread() is self._thread:
            with self._lock:
                return fn(time.monotonic())
        fut: Future[object] = Future()
        self._commands.put((fn, fut))
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"\0")
        return cast(_T, fut.result(timeout=5.0))

    def _cmd_stop(self, now: float) -> None:
        self._stopping = True

    def _cmd_is_idle(self, now: float) -> bool:
        if any(len(line) for line in self._lines.values()):
            return False
        srcs = [e.master for e in self._ends.values() if e.master is not None]
        return not select.select(srcs, [], [], 0)[0]

    def _src(self, d: Direction) -> _PtyEnd:
        return self._ends["a" if d == "a2b" else "b"]

    def _dst(self, d: Direction) -> _PtyEnd:
        return self._ends["b" if d == "a2b" else "a"]

    def _service(self, now: float) -> None:
        """Deliver every byte due by ``now`` (lost if cut or unplugged)."""
        if self._cut_until is not None and now >= self._cut_until:
            self._deliver(self._cut_until)  # bytes due before the deadline are still lost
            self._cut, self._cut_until = False, None
        self._deliver(now)

    def _deliver(self, now: float) -> None:
        for d, line in self._lines.items():
            chunk = line.take_due(now)
            dst = self._dst(d).master
            if not chunk:
                continue
            if self._cut or dst is None:
                line.counters.lost += len(chunk)
                continue
            # The receiving pty (~18 KB) is the UART's receive buffer: when the reader
            # has let it fill, the rest overruns; the line never waits for the reader.
            try:
                n = os.write(dst, chunk)
            except BlockingIOError:
                n = 0
            except OSError:  # not expected while we hold the slave; keep the relay alive
                line.counters.lost += len(chunk)
                continue
            line.counters.bytes_out += n
            line.counters.overrun += len(chunk) - n

    def _next_wake(self, now: float) -> tuple[float | None, bool]:
        """Earliest wake-up time, and whether it must be exact (end of a queue)."""
        wake: float | None = None
        exact = False
        for line in self._lines.values():
            nxt, last = line.next_due(), line.last_due()
            if nxt is None or last is None:
                continue
            t = max(nxt, now + self._granularity)
            line_exact = last <= t
            t = min(t, last)
            if wake is None or t < wake:
                wake, exact = t, line_exact
        if self._cut_until is not None and (wake is None or self._cut_until < wake):
            wake, exact = self._cut_until, True
        return wake, exact

    def _run(self) -> None:
        try:
            self._relay()
        finally:
            # Fail commands nobody will run, rather than leave callers waiting.
            while True:
                try:
                    _, fut = self._commands.get_nowait()
                except Empty:
                    break
                if fut.set_running_or_notify_cancel():
                    fut.set_exception(RuntimeError("wire relay thread has exited"))

    def _relay(self) -> None:
        _reduce_timer_slack()
        if self._realtime:
            # Lowest RT priority: enough to preempt normal tasks, below kernel helpers.
            with contextlib.suppress(OSError, AttributeError):
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))  # this thread
                self.realtime_active = True
        self._thread_ready.set()
        ready: list[int] = []
        while True:
            with self._lock:
                now = time.monotonic()
                if self._wake_r in ready:  # every command is followed by a wake-up byte
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self._wake_r, 4096):
                            pass
                    self._run_commands()
                if self._stopping:
                    return
                now = time.monotonic()
                for d, line in self._lines.items():
                    src = self._src(d).master
                    if src is None or src not in ready:
                        continue
                    room = _TX_QUEUE - len(line)
                    if room <= 0:
                        continue
                    try:
                        data = os.read(src, room)
                    except OSError as e:  # EAGAIN on a stale readiness; EIO cannot happen
                        if e.errno not in (errno.EAGAIN, errno.EIO):  # pragma: no cover
                            raise
                        data = b""
                    if data:
                        line.accept(data, now)
                self._service(now)
                wake, exact = self._next_wake(now)
                rfds = [self._wake_r]
                for d, line in self._lines.items():
                    src = self._src(d).master
                    if src is not None and len(line) <= _TX_LOW:
                        rfds.append(src)
            timeout = None if wake is None else max(0.0, wake - now - (_SPIN if exact else 0.0))
            ready = select.select(rfds, [], [], timeout)[0]
            if exact and wake is not None and not ready:
                ready = self._spin_until(wake, rfds)

    def _run_commands(self) -> None:
        while True:
            try:
                fn, fut = self._commands.get_nowait()
            except Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(time.monotonic()))
            except BaseException as e:  # reported to the caller, the relay goes on
                fut.set_exception(e)

    @staticmethod
    def _spin_until(deadline: float, rfds: list[int]) -> list[int]:
        # Zero-timeout select rather than a pure-Python spin: it releases the GIL, so
        # an in-process host daemon is not starved, and it notices new input at once.
        while time.monotonic() < deadline:
            r = select.select(rfds, [], [], 0)[0]
            if r:
                return r
        return []


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: relay between two ptys until Ctrl-C."""
    p = argparse.ArgumentParser(
        prog="python -m comptoir_tools.simulators.wire",
        description="Paced serial cable between two pseudo-terminals (A: board, B: host).",
    )
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--dir", type=Path, default=Path("/tmp/comptoir-wire"), dest="link_dir")
    p.add_argument("--name", default="wire")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--bit-flip", type=float, default=0.0, help="per-byte probability")
    p.add_argument("--drop", type=float, default=0.0, help="per-byte probability")
    p.add_argument("--duplicate", type=float, default=0.0, help="per-byte probability")
    p.add_argument("--realtime", action="store_true", help="SCHED_FIFO relay, if permitted")
    args = p.parse_args(argv)
    with WireModel(args.baud, args.link_dir, args.name, args.seed, realtime=args.realtime) as wire:
        wire.set_faults(bit_flip=args.bit_flip, drop=args.drop, duplicate=args.duplicate)
        print(f"A (board side): {wire.path_a} -> {wire.device_a}")
        print(f"B (host side):  {wire.path_b} -> {wire.device_b}")
        rt = ", realtime" if wire.realtime_active else ""
        print(f"{args.baud} baud 8N1{rt}; Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
        for d in _DIRECTIONS:
            print(f"{d}: {wire.counters(d)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
