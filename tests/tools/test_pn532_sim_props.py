"""Property test: the simulator parses whatever parameters a driver sends to the
commands added for other drivers (issue 14) and answers each with the ACK and then
either the syntax-error frame or a well-formed reply of the right layout; its thread
never dies on them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pn532_host import SimHost

from comptoir_tools.simulators.phone import Phone
from comptoir_tools.simulators.pn532_sim import ACK, ERROR_FRAME, PN532Sim, encode_frame

# Diagnose, GetGeneralStatus, ReadRegister, WriteRegister, InCommunicateThru, InDeselect,
# InRelease, InSelect (PowerDown, polls and RF settings would change what follows).
COMMANDS = (0x00, 0x04, 0x06, 0x08, 0x42, 0x44, 0x52, 0x54)


class Host(SimHost):
    default_timeout = 1.0

    def command(self, data: bytes) -> bytes:
        self.u.write(encode_frame(0xD4, data))
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
def rig() -> Iterator[tuple[PN532Sim, Host]]:
    with PN532Sim(seed=9) as sim:
        host = Host(sim.port)
        for data in ("14 01 00 00", "12 00", "32 05 01 00 01", "32 02 00 0B 04"):
            host.command(bytes.fromhex(data))  # retry timeout 0.8 ms: quick thru
        sim.place(Phone())
        host.command(bytes.fromhex("4A 01 00"))
        yield sim, host
        host.u.close()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(COMMANDS), st.binary(max_size=40))
def test_any_parameters_get_the_error_frame_or_a_well_formed_reply(
    rig: tuple[PN532Sim, Host], code: int, params: bytes
) -> None:
    sim, host = rig
    got = host.command(bytes([code]) + params)
    assert sim._thread is not None and sim._thread.is_alive()
    if got == ERROR_FRAME:
        return
    body = got[8:-2] if got[3:5] == b"\xff\xff" else got[5:-2]
    assert (sum(body) + got[-2]) & 0xFF == 0 and got[-1] == 0
    assert body[0] == 0xD5 and body[1] == code + 1, got.hex()
    data = body[2:]
    if code == 0x06:
        assert len(params) % 2 == 0 and len(data) == len(params) // 2
    elif code == 0x08:
        assert len(params) % 3 == 0 and data == b""
    elif code == 0x04:
        assert len(data) in (4, 8) and data[2] in (0, 1)
    elif code in (0x44, 0x52, 0x54, 0x42):
        assert len(data) >= 1
