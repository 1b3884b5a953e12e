"""Two `comptoir run` on one data directory: the second is refused by name, since the verifier
checks replays against its in-memory state (docs/tokens.md §8)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

COMPTOIR = Path(sys.executable).with_name("comptoir")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp_path: Path, name: str) -> Path:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(f"""
[boards]
discover = true
require_pairing = false
[paths]
data_dir = "{tmp_path / 'data'}"
keys_dir = "{tmp_path / 'keys'}"
[api]
port = {_free_port()}
token_file = "{tmp_path / f'{name}-token'}"
""")
    return cfg


def test_a_second_daemon_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    trust = tmp_path / "trust"
    subprocess.run([str(COMPTOIR), "pki", "init", str(trust)], check=True, capture_output=True)
    first = subprocess.Popen([str(COMPTOIR), "run", "--config", str(_config(tmp_path, "a")),
                              "--trust-dir", str(trust)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "a-token").exists():  # written once the services are up
            assert first.poll() is None and time.monotonic() < deadline, first.poll()
            time.sleep(0.1)
        second = subprocess.run([str(COMPTOIR), "run", "--config", str(_config(tmp_path, "b")),
                                 "--trust-dir", str(trust)],
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert "in use by another process" in second.stderr
        assert first.poll() is None  # the first one is unharmed
    finally:
        first.send_signal(signal.SIGTERM)
        out = first.communicate(timeout=10)[0]
    assert first.returncode == 0, out
