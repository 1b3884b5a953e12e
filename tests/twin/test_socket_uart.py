"""The twin's board backend also takes a Unix socket as a UART: the firmware on
MicroPython says HELLO over it and answers a STATUS request."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from comptoir_link import frames as F
from comptoir_link.host_side import HostLink
from comptoir_link.link import UP
from comptoir_tools.firmware.build import compile_tree
from comptoir_tools.twin.twin import FirmwareProcess


def test_firmware_speaks_the_link_over_a_unix_socket(tmp_path: Path) -> None:
    fw = tmp_path / "fw"
    compile_tree(out=fw)
    sock_path = tmp_path / "host.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)
    proc = FirmwareProcess(fw, {"host": f"socket:{sock_path}"}, board_id="a1b2c3d4",
                           state_dir=tmp_path / "state", restart=False).start()
    try:
        server.settimeout(10)
        conn, _ = server.accept()
        conn.settimeout(0.01)
        got: list[tuple[int, bytes]] = []
        link = HostLink(conn.sendall, heartbeat_ms=200)
        link.on_message = lambda t, p: got.append((t, bytes(p)))
        deadline = time.monotonic() + 10
        asked = False
        while time.monotonic() < deadline and not any(t == F.STATUS for t, _ in got):
            try:
                data = conn.recv(4096)
            except TimeoutError:
                data = b""
            if data:
                link.feed(data)
            link.poll()
            if link.state == UP and not asked:
                asked = link.send(F.STATUS_REQUEST)
        assert link.state == UP
        assert link.peer[F.T_BOARD_ID] == bytes.fromhex("a1b2c3d4")
        status = next(p for t, p in got if t == F.STATUS)
        assert int.from_bytes(status[:4], "little") > 10_000  # free heap
        conn.close()
    finally:
        proc.stop()
        server.close()
