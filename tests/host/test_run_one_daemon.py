"""Two `comptoir run` on one data directory: the second is refused by name, since the verifier
checks replays against its in-memory state (docs/tokens.md §8)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from run_fixtures import COMPTOIR, test_trust, write_config


def _config(tmp_path: Path, name: str) -> Path:
    return write_config(tmp_path / f"{name}.toml", data_dir=tmp_path / "data",
                        keys_dir=tmp_path / "keys", token_file=tmp_path / f"{name}-token")


def test_a_second_daemon_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    trust = test_trust(tmp_path)
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
