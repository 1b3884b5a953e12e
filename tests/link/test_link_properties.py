"""Property: whatever the line does to the bytes, every message is delivered
exactly once and in order, or the link reports the loss; a damaged message is
never delivered and nothing crashes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from linkpair import Pair

from comptoir_link import frames as F

# One fault per frame written to the line, taken in turn from a drawn plan.
fault = st.one_of(
    st.just(("pass",)),
    st.just(("drop",)),
    st.just(("dup",)),
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("garbage"), st.binary(min_size=1, max_size=40)),
)
messages = st.lists(
    st.tuples(st.sampled_from([F.LOG, F.ERROR, F.BENCH_DATA]), st.binary(max_size=700)),
    max_size=25,
)


class Channel:
    def __init__(self, plan: list[tuple]) -> None:
        self.plan = plan or [("pass",)]
        self.i = 0

    def __call__(self, chunk: bytes) -> bytes:
        op = self.plan[self.i % len(self.plan)]
        self.i += 1
        if op[0] == "drop":
            return b""
        if op[0] == "dup":
            return chunk + chunk
        if op[0] == "flip":
            b = bytearray(chunk)
            b[op[1] % len(b)] ^= 1 << op[2]
            return bytes(b)
        if op[0] == "truncate":
            return chunk[: op[1] % len(chunk)]
        if op[0] == "garbage":
            return op[1] + chunk
        return chunk


def _exchange(up_msgs, down_msgs, up_plan, down_plan, window):
    p = Pair(max_payload=1024, window=window, heartbeat_ms=200)
    p.run(3000)  # the handshake itself may need several tries through the faults
    lost: list[str] = []
    if not (p.board.state == 1 and p.host.state == 1):
        return p, None
    p.board.on_down = lambda why: lost.append("board: " + why)
    p.host.on_down = lambda why: lost.append("host: " + why)
    up_ch, down_ch = Channel(up_plan), Channel(down_plan)
    up_q, down_q = list(up_msgs), list(down_msgs)
    for _ in range(12_000):  # 60 s of line time at most
        if lost:
            break
        while up_q and p.board.send(*up_q[0]):
            up_q.pop(0)
        while down_q and p.host.send(*down_q[0]):
            down_q.pop(0)
        if (not up_q and not down_q and p.board.idle() and p.host.idle()
                and len(p.host_got) == len(up_msgs) and len(p.board_got) == len(down_msgs)):
            break
        p.board.poll()
        p.host.poll()
        p.deliver(to_host_filter=up_ch, to_board_filter=down_ch)
        p.clock.t += 5
    return p, lost


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(up=messages, down=messages, up_plan=st.lists(fault, max_size=12),
       down_plan=st.lists(fault, max_size=12), window=st.sampled_from([1, 2, 4]))
def test_exactly_once_in_order_or_reported_loss(up, down, up_plan, down_plan, window):
    p, lost = _exchange(up, down, up_plan, down_plan, window)
    if lost is None:
        return  # the handshake never got through this line: nothing was accepted for sending
    # Never a damaged, duplicated or reordered message: always a prefix.
    assert p.host_got == up[: len(p.host_got)]
    assert p.board_got == down[: len(p.board_got)]
    if not lost:
        assert p.host_got == up
        assert p.board_got == down


@settings(max_examples=200, deadline=None)
@given(noise=st.binary(max_size=3000))
def test_arbitrary_bytes_never_crash_or_deliver(noise):
    p = Pair()
    p.connect()
    p.host.feed(noise)
    p.board.feed(noise)
    assert p.host_got == [] and p.board_got == []
    # And the link still works afterwards.
    p.board.send(F.LOG, b"still here")
    p.run(2500)
    assert p.host_got == [(F.LOG, b"still here")]


class NoisyLine:
    """Independent faults per frame at fixed rates (a bad but usable cable)."""

    def __init__(self, seed: int, drop: float, flip: float, dup: float) -> None:
        import random

        self.rng = random.Random(seed)
        self.drop, self.flip, self.dup = drop, flip, dup

    def __call__(self, chunk: bytes) -> bytes:
        r = self.rng.random()
        if r < self.drop:
            return b""
        if r < self.drop + self.flip:
            b = bytearray(chunk)
            b[self.rng.randrange(len(b))] ^= 1 << self.rng.randrange(8)
            return bytes(b)
        if r < self.drop + self.flip + self.dup:
            return chunk + chunk
        return chunk


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), window=st.sampled_from([1, 2, 4, 8]))
def test_usable_noisy_line_delivers_everything_without_loss(seed, window):
    up = [(F.LOG, bytes([i]) * (i * 13 % 600)) for i in range(120)]
    down = [(F.ERROR, bytes([i]) * (i * 7 % 300)) for i in range(60)]
    p = Pair(max_payload=1024, window=window, heartbeat_ms=200)
    p.connect()
    lost: list[str] = []
    p.board.on_down = lambda why: lost.append(why)
    p.host.on_down = lambda why: lost.append(why)
    up_line = NoisyLine(seed, 0.10, 0.05, 0.05)
    down_line = NoisyLine(seed + 1, 0.10, 0.05, 0.05)
    for _ in range(60_000):
        while up and p.board.send(*up[0]):
            up.pop(0)
        while down and p.host.send(*down[0]):
            down.pop(0)
        if not up and not down and p.board.idle() and p.host.idle():
            break
        p.board.poll()
        p.host.poll()
        p.deliver(to_host_filter=up_line, to_board_filter=down_line)
        p.clock.t += 5
    assert not lost
    assert [m for _, m in p.host_got] == [bytes([i]) * (i * 13 % 600) for i in range(120)]
    assert [m for _, m in p.board_got] == [bytes([i]) * (i * 7 % 300) for i in range(60)]
