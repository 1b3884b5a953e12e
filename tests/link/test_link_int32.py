"""The link's CRC handling on a 32-bit port (review finding 13), modelled on CPython.

On the ESP32, small ints are 31 bits: `binascii.crc32` returns a heap long int for the
3/4 of CRC values >= 2**30 (extmod/modbinascii.c: mp_obj_new_int_from_uint), a
literal such as 0xFFFFFFFF is a long, a result past 2**30 (`byte << 24`) becomes one,
and every arithmetic operation with a long operand allocates its result
(py/objint_mpz.c mp_obj_int_binary_op: mp_obj_int_new_mpz; comparisons do not).
The 64-bit unix port never shows any of it (its small ints are 62 bits), so this
test runs the real link code on CPython with ints that count what the 32-bit port
would allocate: Port32Int for crc32's results and the received bytes.

What it asks: the receive path makes no long int at all for a good frame, and no
path does arithmetic on a long (crc32's own result on the send side is the one
allocation left: binascii has no other way to give it)."""

from __future__ import annotations

import operator
import random
import sys
from typing import Any

from linkpair import Pair

from comptoir_link import frames as F
from comptoir_link import link as L

SMALL_MIN, SMALL_MAX = -(1 << 30), (1 << 30) - 1


def _small(v: int) -> bool:
    return SMALL_MIN <= int(v) <= SMALL_MAX


class Count:
    longs_from_ops = 0  # arithmetic with a long operand or a long result
    longs_from_crc = 0  # crc32 results >= 2**30
    longs_from_crc_rx = 0  # ... of them, in the receive path (Link._on_body)


def _op(f: Any) -> Any:
    def do(a: int, b: int) -> Port32Int:
        r = f(int(a), int(b))
        if not (_small(a) and _small(b) and _small(r)):
            Count.longs_from_ops += 1
        return Port32Int(r)

    return do


def _rop(f: Any) -> Any:
    g = _op(f)
    return lambda a, b: g(b, a)


class Port32Int(int):
    """An int as the 32-bit port keeps it: operations counted when a long is involved."""

    __and__ = _op(operator.and_)
    __rand__ = _rop(operator.and_)
    __or__ = _op(operator.or_)
    __ror__ = _rop(operator.or_)
    __xor__ = _op(operator.xor)
    __rxor__ = _rop(operator.xor)
    __lshift__ = _op(operator.lshift)
    __rlshift__ = _rop(operator.lshift)
    __rshift__ = _op(operator.rshift)
    __rrshift__ = _rop(operator.rshift)
    __add__ = _op(operator.add)
    __radd__ = _rop(operator.add)
    __sub__ = _op(operator.sub)
    __rsub__ = _rop(operator.sub)


class Port32Bytes(bytearray):
    """A receive buffer whose bytes read back as Port32Int."""

    def __getitem__(self, i: Any) -> Any:
        v = bytearray.__getitem__(self, i)
        return Port32Int(v) if isinstance(i, int) else v


def _crc32(data: Any, value: int = 0) -> Port32Int:
    import binascii

    c = binascii.crc32(data, value)
    if not _small(c):
        Count.longs_from_crc += 1
        if sys._getframe(1).f_code.co_name == "_on_body":
            Count.longs_from_crc_rx += 1
    return Port32Int(c)


def _port32(link: L.Link) -> None:
    dec = link._dec
    dec.buf = Port32Bytes(len(dec.buf))
    link._rx_mv = memoryview(dec.buf)


def test_crc_handling_makes_no_long_ints_on_a_32_bit_port(monkeypatch) -> None:
    monkeypatch.setattr(L, "crc32", _crc32)
    p = Pair(max_payload=1024)
    _port32(p.host)
    _port32(p.board)
    p.connect()
    Count.longs_from_ops = Count.longs_from_crc = Count.longs_from_crc_rx = 0
    rnd = random.Random(13)
    sent = []
    for i in range(200):  # about 150 of them with a CRC >= 2**30
        payload = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64)))
        while not p.board.send(F.LOG, payload):
            p.run(5)
        sent.append(payload)
        if i % 2:
            p.host.send(F.VERDICT, payload[:32])
    p.run(100)
    assert [m for t, m in p.host_got if t == F.LOG] == sent
    assert p.host.counter("crc_errors") == 0 and p.board.counter("crc_errors") == 0
    # Receiving a good frame: no long int at all. Sending: none made by arithmetic
    # (crc32's own result is the one left, 3/4 of the frames).
    assert Count.longs_from_crc_rx == 0, Count.longs_from_crc_rx
    assert Count.longs_from_ops == 0, Count.longs_from_ops
    assert Count.longs_from_crc > 100  # the model is live: crc32 gave longs when sending


def test_the_model_sees_the_old_arithmetic() -> None:
    """The counting ints themselves: what the firmware used to do is counted."""
    Count.longs_from_ops = 0
    c = Port32Int(0xC0FFEE11)
    _ = c & 0xFFFFFFFF
    _ = Port32Int(0x80) << 24
    _ = Port32Int(0x12) << 8
    assert Count.longs_from_ops == 2
