"""`comptoir run` serves the counter screen beside the API, and `comptoir screen` (another
process, as the daemon's user would run it) prints a link that signs a page in to it."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from run_fixtures import COMPTOIR, free_port, test_trust, write_config


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
    r = conn.getresponse()
    r.read()
    conn.close()
    return r


def test_comptoir_run_serves_the_screen_and_comptoir_screen_signs_in(tmp_path: Path) -> None:
    trust = test_trust(tmp_path)
    api, screen = free_port(), free_port()
    cfg = write_config(tmp_path / "comptoir.toml", data_dir=tmp_path / "data",
                       keys_dir=tmp_path / "keys", token_file=tmp_path / "api-token", port=api,
                       extra=f"[screen]\nport = {screen}\n")
    run = subprocess.Popen([str(COMPTOIR), "run", "--config", str(cfg), "--trust-dir",
                            str(trust)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if _get(screen, "/static/screen.css").status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and run.poll() is None, "no screen"
            time.sleep(0.1)
        assert _get(screen, "/").status == 401
        out = subprocess.run([str(COMPTOIR), "screen", "--config", str(cfg)], check=True,
                             capture_output=True, text=True).stdout
        link = out.strip().splitlines()[-1]
        assert link.startswith(f"http://127.0.0.1:{screen}/connexion?jeton=")
        r = _get(screen, link.split(str(screen), 1)[1])
        assert r.status == 303
        cookie = (r.getheader("Set-Cookie") or "").split(";", 1)[0]
        assert _get(screen, "/ecran/etat", {"Cookie": cookie}).status == 200
        assert _get(screen, link.split(str(screen), 1)[1]).status == 403  # once
    finally:
        run.terminate()
        run.wait(timeout=20)
