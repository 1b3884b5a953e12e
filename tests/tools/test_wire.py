"""Wire model: byte transparency, pacing, faults, unplug, cleanup.

Timing assertions use deterministic lower bounds (a byte can never arrive before its
line time) and deliberately loose upper bounds (1.5x + 50 ms): CI machines are shared,
so precise speed is left to the benchmarks.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from comptoir_tools.simulators.wire import (
    BITS_PER_BYTE,
    FaultConfig,
    LineCounters,
    PacedLine,
    WireModel,
)

FAST = 921_600


def _open(path: Path, timeout: float = 2.0) -> serial.Serial:
    return serial.serial_for_url(str(path), timeout=timeout)


def _line_time(n: int, baud: int) -> float:
    return n * BITS_PER_BYTE / baud


def _read_timed(port: serial.Serial, n: int, timeout: float = 3.0) -> list[tuple[float, int]]:
    """Read n bytes; return (time after the read, total so far) per read."""
    marks: list[tuple[float, int]] = []
    total = 0
    deadline = time.monotonic() + timeout
    while total < n and time.monotonic() < deadline:
        got = port.read(max(1, min(port.in_waiting, n - total)))
        total += len(got)
        marks.append((time.monotonic(), total))
    return marks


def _invariant_holds(c: LineCounters, pending: int) -> bool:
    expected = c.bytes_in - c.dropped + c.duplicated + c.garbage - c.lost - c.overrun
    return c.bytes_out + pending == expected


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[WireModel]:
    with WireModel(FAST, tmp_path, seed=1234) as w:
        yield w


@pytest.fixture
def ports(wire: WireModel) -> Iterator[tuple[serial.Serial, serial.Serial]]:
    a, b = _open(wire.path_a), _open(wire.path_b)
    yield a, b
    a.close()
    b.close()


# ---- ptys and transparency ---------------------------------------------------------


def test_symlinks_point_to_raw_ptys(wire: WireModel) -> None:
    for link, dev in ((wire.path_a, wire.device_a), (wire.path_b, wire.device_b)):
        assert link.is_symlink()
        assert dev is not None and dev.startswith("/dev/")
        assert os.readlink(link) == dev
        fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
        try:
            iflag, oflag, cflag, lflag, *_ = termios.tcgetattr(fd)
        finally:
            os.close(fd)
        assert not lflag & (termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
        assert not iflag & (termios.ICRNL | termios.INLCR | termios.IXON | termios.ISTRIP)
        assert not oflag & termios.OPOST
        assert cflag & termios.CSIZE == termios.CS8


def test_all_256_byte_values_pass_both_ways(ports: tuple[serial.Serial, serial.Serial]) -> None:
    a, b = ports
    data = bytes(range(256)) + bytes(reversed(range(256))) + b"\r\n\n\r\x03\x04\x11\x13\x1a\x7f\xff"
    a.write(data)
    b.write(data[::-1])
    assert b.read(len(data)) == data
    assert a.read(len(data)) == data[::-1]


def test_raw_fd_endpoint_like_micropython(wire: WireModel) -> None:
    """The firmware opens end A with open(path, 'r+b'), not pyserial."""
    with open(wire.path_a, "r+b", buffering=0) as board, _open(wire.path_b) as host:
        host.write(b"\x00ping\xff")
        got = b""
        while len(got) < 6:
            got += board.read(6 - len(got)) or b""
        assert got == b"\x00ping\xff"
        board.write(b"pong\n")
        assert host.read(5) == b"pong\n"


# ---- pacing ------------------------------------------------------------------------


@pytest.mark.parametrize(("baud", "n"), [(115_200, 1000), (921_600, 8000)])
def test_burst_is_paced_at_line_rate(tmp_path: Path, baud: int, n: int) -> None:
    with WireModel(baud, tmp_path) as w, _open(w.path_a) as a, _open(w.path_b) as b:
        t0 = time.monotonic()
        a.write(bytes(n))
        marks = _read_timed(b, n)
        assert marks[-1][1] == n
        for t, total in marks:
            # Deterministic: every byte is due no earlier than its own line time.
            assert t - t0 >= _line_time(total, baud)
        elapsed = marks[-1][0] - t0
        assert elapsed <= 1.5 * _line_time(n, baud) + 0.05
        # Streamed as on a wire, not stored and forwarded: the first bytes come early.
        assert marks[0][0] - t0 < 0.5 * _line_time(n, baud)
        assert w.counters("a2b").bytes_out == n


def test_idle_line_gives_no_credit_and_set_baud_applies(
    wire: WireModel, ports: tuple[serial.Serial, serial.Serial]
) -> None:
    a, b = ports
    wire.set_baud(1200)  # 8.33 ms per byte: large against scheduling noise
    assert wire.baud == 1200
    for _ in range(2):
        time.sleep(0.03)  # idle line: the next byte must still take its own byte time
        t0 = time.monotonic()
        b.write(b"\x55")
        assert a.read(1) == b"\x55"
        elapsed = time.monotonic() - t0
        assert _line_time(1, 1200) <= elapsed <= 1.5 * _line_time(1, 1200) + 0.05
    wire.baud = FAST
    t0 = time.monotonic()
    b.write(b"x" * 100)
    assert a.read(100) == b"x" * 100
    assert time.monotonic() - t0 < _line_time(100, 1200)


def test_directions_are_independent_lines(tmp_path: Path) -> None:
    baud, n = 115_200, 3000
    with WireModel(baud, tmp_path) as w, _open(w.path_a) as a, _open(w.path_b) as b:
        done: dict[str, float] = {}

        def pump(src: serial.Serial, dst: serial.Serial, key: str) -> None:
            src.write(bytes(n))
            if len(dst.read(n)) == n:
                done[key] = time.monotonic()

        t0 = time.monotonic()
        threads = [
            threading.Thread(target=pump, args=(a, b, "a2b")),
            threading.Thread(target=pump, args=(b, a, "b2a")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Full duplex: both finish in about one line time; a shared line would need two.
        for key in ("a2b", "b2a"):
            assert _line_time(n, baud) <= done[key] - t0 <= 1.5 * _line_time(n, baud) + 0.05


# ---- faults ------------------------------------------------------------------------


def _pattern(n: int) -> bytes:
    """No two neighbours equal, so duplicates are unambiguous."""
    return bytes(i % 251 for i in range(n))


def test_bit_flips_match_rate_and_counters(
    wire: WireModel, ports: tuple[serial.Serial, serial.Serial]
) -> None:
    a, b = ports
    n, p = 5000, 0.05
    wire.set_faults("a2b", bit_flip=p)
    data = _pattern(n)
    a.write(data)
    b.write(data)
    got_b, got_a = b.read(n), a.read(n)
    assert len(got_b) == n
    diffs = [x ^ y for x, y in zip(data, got_b, strict=True) if x != y]
    assert all(d.bit_count() == 1 for d in diffs)  # exactly one bit per corrupted byte
    assert len(diffs) == wire.counters("a2b").corrupted
    assert 150 < len(diffs) < 350  # 250 expected, sd ~15
    assert got_a == data  # the other direction is untouched
    assert wire.counters("b2a").corrupted == 0


def test_faults_replay_with_the_same_seed(tmp_path: Path) -> None:
    data = _pattern(3000)
    received = []
    for i in range(2):
        with WireModel(FAST, tmp_path / str(i), seed=99) as w:
            w.set_faults("b2a", bit_flip=0.02, drop=0.02, duplicate=0.02)
            with _open(w.path_a) as a, _open(w.path_b) as b:
                b.write(data)
                assert w.wait_idle()
                received.append(a.read(w.counters("b2a").bytes_out))
    assert received[0] == received[1] != data


def test_drops_leave_a_subsequence(
    wire: WireModel, ports: tuple[serial.Serial, serial.Serial]
) -> None:
    a, b = ports
    n = 5000
    wire.set_faults("b2a", drop=0.1)
    data = _pattern(n)
    b.write(data)
    assert wire.wait_idle()
    c = wire.counters("b2a")
    got = a.read(c.bytes_out)
    assert len(got) == n - c.dropped == c.bytes_out
    assert 370 < c.dropped < 630  # 500 expected, sd ~21
    it = iter(data)
    assert all(x in it for x in got)  # got is a subsequence of data, in order


def test_duplicates_are_counted(
    wire: WireModel, ports: tuple[serial.Serial, serial.Serial]
) -> None:
    a, b = ports
    n = 5000
    wire.set_faults(duplicate=0.1)
    data = _pattern(n)
    a.write(data)
    assert wire.wait_idle()
    c = wire.counters("a2b")
    got = b.read(c.bytes_out)
    j = dups = 0
    for x in data:
        assert got[j] == x
        j += 1
        if j < len(got) and got[j] == x:
            j += 1
            dups += 1
    assert j == len(got) == n + c.duplicated
    assert dups == c.duplicated
    assert 370 < dups < 630


def test_garbage_burst_arrives(wire: WireModel, ports: tuple[serial.Serial, serial.Serial]) -> None:
    a, b = ports
    burst = wire.inject_garbage("a2b", 100)
    assert len(burst) == 100
    assert b.read(100) == burst
    assert wire.inject_garbage("both", b"\x7e\x00\xff") == b"\x7e\x00\xff"
    assert a.read(3) == b.read(3) == b"\x7e\x00\xff"
    assert wire.counters("a2b").garbage == 103
    assert wire.counters("a2b").bytes_in == 0


def test_garbage_lands_inside_a_frame_in_flight(tmp_path: Path) -> None:
    baud, n = 115_200, 2000  # 174 ms on the line
    with WireModel(baud, tmp_path) as w, _open(w.path_a) as a, _open(w.path_b) as b:
        data = b"\x55" * n
        a.write(data)
        time.sleep(0.05)
        w.inject_garbage("a2b", b"\xaa" * 8)
        got = b.read(n + 8)
        i = got.index(b"\xaa")
        assert 0 < i < n
        assert got == data[:i] + b"\xaa" * 8 + data[i:]


def test_cut_loses_both_ways_then_restore_resumes(
    wire: WireModel, ports: tuple[serial.Serial, serial.Serial]
) -> None:
    a, b = ports
    wire.cut()
    assert wire.is_cut
    a.write(b"A" * 100)
    b.write(b"B" * 100)
    assert wire.wait_idle()
    assert wire.counters("a2b").lost == wire.counters("b2a").lost == 100
    a.timeout = b.timeout = 0.05
    assert a.read(1) == b"" and b.read(1) == b""
    wire.restore()
    a.timeout = b.timeout = 2.0
    a.write(b"after")
    b.write(b"AFTER")
    assert b.read(5) == b"after"
    assert a.read(5) == b"AFTER"


def test_cut_for_restores_by_itself(
    wire: WireModel, ports: tuple[serial.Serial, serial.Serial]
) -> None:
    a, b = ports
    wire.cut_for(0.1)
    a.write(b"lost")
    assert wire.wait_idle()
    assert wire.is_cut
    time.sleep(0.15)
    assert not wire.is_cut
    a.write(b"kept")
    assert b.read(4) == b"kept"
    assert wire.counters("a2b").lost == 4


def test_unplug_breaks_the_host_port_and_replug_works(
    wire: WireModel, ports: tuple[serial.Serial, serial.Serial]
) -> None:
    a, b = ports
    wire.unplug()
    assert not wire.plugged
    assert not os.path.lexists(wire.path_b)
    # What pyserial sees when a USB-serial adapter vanishes under it.
    with pytest.raises(serial.SerialException, match="returned no data"):
        b.read(1)
    with pytest.raises(serial.SerialException, match="write failed"):
        b.write(b"x")
    with pytest.raises(serial.SerialException):
        _open(wire.path_b)  # like opening a missing /dev/ttyUSB0
    a.write(b"into the void")
    assert wire.wait_idle()
    assert wire.counters("a2b").lost == len(b"into the void")
    b.close()

    wire.replug()
    assert wire.plugged and os.path.islink(wire.path_b)
    assert wire.device_b is not None  # often the same /dev/pts number, like ttyUSB0
    with _open(wire.path_b) as b2:
        a.write(b"hello")
        assert b2.read(5) == b"hello"
        b2.write(b"world")
        assert a.read(5) == b"world"


def test_unplug_keeps_board_side(wire: WireModel) -> None:
    with open(wire.path_a, "r+b", buffering=0) as board:
        wire.unplug()
        wire.replug()
        with _open(wire.path_b) as host:
            host.write(b"ok")
            got = b""
            while len(got) < 2:
                got += board.read(2 - len(got)) or b""
            assert got == b"ok"


def test_unread_receiver_overruns_and_flush_input_empties_it(tmp_path: Path) -> None:
    # Nobody reads end B: the pty fills (~18 KB), then the line drops bytes like a UART.
    n = 40_000
    with WireModel(4_000_000, tmp_path) as w, _open(w.path_a) as a:
        a.write(bytes(n))
        assert w.wait_idle()
        c = w.counters("a2b")
        assert c.overrun > 0
        assert c.bytes_out + c.overrun == c.bytes_in == n
        w.flush_input("b")
        fd = os.open(w.path_b, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            assert not select.select([fd], [], [], 0.05)[0]
        finally:
            os.close(fd)


def test_counters_stay_consistent_under_every_fault(
    wire: WireModel, ports: tuple[serial.Serial, serial.Serial]
) -> None:
    a, b = ports
    wire.set_faults(bit_flip=0.05, drop=0.05, duplicate=0.05)
    for i in range(3):
        a.write(_pattern(1500))
        b.write(_pattern(1500))
        wire.inject_garbage("both", 20)
        if i == 1:
            wire.cut_for(0.002)
    assert wire.wait_idle()
    for d in ("a2b", "b2a"):
        c = wire.counters(d)
        assert c.bytes_in == 4500
        assert _invariant_holds(c, wire.pending(d))
    assert len(b.read(wire.counters("a2b").bytes_out)) == wire.counters("a2b").bytes_out


def test_bad_arguments_are_rejected(wire: WireModel) -> None:
    with pytest.raises(ValueError):
        wire.set_faults(drop=1.5)
    with pytest.raises(ValueError):
        wire.set_baud(0)
    with pytest.raises(ValueError):
        wire.inject_garbage("sideways", 1)  # type: ignore[arg-type]


# ---- lifecycle ---------------------------------------------------------------------


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_stop_leaves_no_thread_and_no_fd(tmp_path: Path) -> None:
    before = _fds()
    w = WireModel(FAST, tmp_path, name="cleanup").start()
    with _open(w.path_a) as a, _open(w.path_b) as b:
        a.write(b"x")
        assert b.read(1) == b"x"
    w.unplug()
    w.replug()
    assert any(t.name == "wire-cleanup" for t in threading.enumerate())
    w.stop()
    assert not w.running
    assert not any(t.name == "wire-cleanup" for t in threading.enumerate())
    assert _fds() == before
    assert not os.path.lexists(w.path_a) and not os.path.lexists(w.path_b)
    w.stop()  # idempotent
    with pytest.raises(RuntimeError):
        w.start()


def test_cli_relays_until_interrupted(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "comptoir_tools.simulators.wire", "--baud", "115200",
         "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert str(tmp_path / "wire-a") in lines[0] and str(tmp_path / "wire-b") in lines[1]
        with _open(tmp_path / "wire-a") as a, _open(tmp_path / "wire-b") as b:
            a.write(b"cli")
            assert b.read(3) == b"cli"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "a2b: LineCounters(bytes_in=3, bytes_out=3" in out
    assert not os.path.lexists(tmp_path / "wire-a")


# ---- properties --------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    baud=st.sampled_from([1200, 115_200, 921_600, 3_000_000]),
    events=st.lists(st.tuples(st.floats(0, 2e-3), st.integers(0, 50), st.booleans()), max_size=60),
)
def test_paced_line_delivers_each_byte_at_its_line_time(
    baud: int, events: list[tuple[float, int, bool]]
) -> None:
    """Against a reference: due_i = max(arrival_i, due_{i-1}) + 10/baud, exactly."""
    tb = BITS_PER_BYTE / baud
    line = PacedLine(baud)
    sent = bytearray()
    due: list[float] = []
    got = bytearray()
    t = 0.0
    for dt, n, write in events:
        t += dt
        if write:
            chunk = bytes((len(sent) + k) % 256 for k in range(n))
            for _ in chunk:
                due.append(max(t, due[-1] if due else t) + tb)
            sent += chunk
            line.accept(chunk, t)
        else:
            got += line.take_due(t)
            # Exactly the bytes due by t, within float rounding.
            assert sum(d <= t - 1e-9 for d in due) <= len(got) <= sum(d <= t + 1e-9 for d in due)
            if due and len(got) < len(due):
                nxt = line.next_due()
                assert nxt is not None and abs(nxt - due[len(got)]) < 1e-9
    got += line.take_due(1e9)
    assert got == sent
    assert line.next_due() is None


@settings(max_examples=100, deadline=None)
@given(
    data=st.binary(max_size=600),
    cuts=st.lists(st.integers(0, 600), max_size=8),
)
def test_paced_line_faults_do_not_depend_on_chunking(data: bytes, cuts: list[int]) -> None:
    bounds = sorted(cuts)
    split = [data[i:j] for i, j in zip([0, *bounds], [*bounds, None], strict=True)]
    outs = []
    for pieces in ([data], split):
        line = PacedLine(115_200, random.Random("fixed"))
        line.faults = FaultConfig(bit_flip=0.1, drop=0.1, duplicate=0.1)
        for p in pieces:
            line.accept(p, 0.0)
        outs.append((line.take_due(1e9), line.counters))
    assert outs[0] == outs[1]


@pytest.fixture(scope="module")
def fast_link(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[WireModel, serial.Serial, serial.Serial]]:
    with WireModel(3_000_000, tmp_path_factory.mktemp("wire")) as w:
        a, b = _open(w.path_a), _open(w.path_b)
        yield w, a, b
        a.close()
        b.close()


@settings(max_examples=30, deadline=None)
@given(chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=12), to_b=st.booleans())
def test_any_chunking_arrives_identical_and_in_order(
    fast_link: tuple[WireModel, serial.Serial, serial.Serial],
    chunks: list[bytes],
    to_b: bool,
) -> None:
    _, a, b = fast_link
    src, dst = (a, b) if to_b else (b, a)
    for c in chunks:
        src.write(c)
    expected = b"".join(chunks)
    assert dst.read(len(expected)) == expected
    assert dst.in_waiting == 0
