"""What the `comptoir run` tests share: the command, published test trust material and a
config file for a pharmacy PC under a test directory."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

COMPTOIR = Path(sys.executable).with_name("comptoir")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_trust(tmp_path: Path) -> Path:
    """A test PKI's published trust material (`comptoir pki init`)."""
    trust = tmp_path / "trust"
    subprocess.run([str(COMPTOIR), "pki", "init", str(trust)], check=True, capture_output=True)
    return trust


test_trust.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def write_config(path: Path, *, data_dir: Path, keys_dir: Path, token_file: Path,
                 port: int | None = None, extra: str = "") -> Path:
    """A comptoir.toml: boards found by USB id, no pairing, the API on a free port."""
    path.write_text(f"""
[boards]
discover = true
require_pairing = false
[paths]
data_dir = "{data_dir}"
keys_dir = "{keys_dir}"
[api]
port = {port or free_port()}
token_file = "{token_file}"
{extra}""")
    return path
