"""`comptoir run` as a pharmacy PC runs it: a config file, published trust
material, a board on a serial port; the local API answers and shows the board."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from comptoir_tools.firmware_build import compile_tree
from comptoir_tools.twin import FirmwareProcess
from comptoir_tools.wire import WireModel

COMPTOIR = Path(sys.executable).with_name("comptoir")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None = None) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=2) as r:
        return json.loads(r.read())


def test_run_serves_a_board_and_the_local_api(tmp_path: Path) -> None:
    trust = tmp_path / "trust"
    subprocess.run([str(COMPTOIR), "pki", "init", str(trust)], check=True, capture_output=True)
    port = _free_port()
    cfg = tmp_path / "comptoir.toml"
    cfg.write_text(f"""
[boards]
discover = true
require_pairing = false
[paths]
data_dir = "{tmp_path / 'data'}"
keys_dir = "{tmp_path / 'keys'}"
[api]
port = {port}
token_file = "{tmp_path / 'api-token'}"
""")
    fw = tmp_path / "fw"
    compile_tree(out=fw)
    with WireModel(115200, tmp_path / "dev", name="b") as wire:
        board = FirmwareProcess(fw, {"host": wire.path_a}, board_id="0badc0de",
                                state_dir=tmp_path / "state", restart=False).start()
        run = subprocess.Popen([str(COMPTOIR), "run", "--config", str(cfg), "--port",
                                str(wire.path_b), "--trust-dir", str(trust)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            boards: dict = {}
            while time.monotonic() < deadline:
                try:
                    token = (tmp_path / "api-token").read_text().strip()
                    boards = _get(f"{base}/v1/boards", token)
                    if "up" in json.dumps(boards):
                        break
                except (OSError, ValueError):
                    pass
                time.sleep(0.2)
            assert "0badc0de" in json.dumps(boards), (boards, run.poll())
            assert "up" in json.dumps(boards)
            # Without the token: refused.
            try:
                _get(f"{base}/v1/boards")
                raise AssertionError("the API answered without a token")
            except urllib.error.HTTPError as e:
                assert e.code == 401
        finally:
            run.send_signal(signal.SIGTERM)
            out = run.communicate(timeout=10)[0]
            board.stop()
        assert run.returncode == 0, out
