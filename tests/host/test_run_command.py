"""`comptoir run` as a pharmacy PC runs it: a config file, published trust
material, a board on a serial port; the local API answers and shows the board."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from run_fixtures import COMPTOIR, free_port, test_trust, write_config

from comptoir_tools.firmware.build import compile_tree
from comptoir_tools.simulators.wire import WireModel
from comptoir_tools.twin.twin import FirmwareProcess


def _get(url: str, token: str | None = None) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=2) as r:
        return json.loads(r.read())


def test_run_serves_a_board_and_the_local_api(tmp_path: Path) -> None:
    trust = test_trust(tmp_path)
    port = free_port()
    cfg = write_config(tmp_path / "comptoir.toml", data_dir=tmp_path / "data",
                       keys_dir=tmp_path / "keys", token_file=tmp_path / "api-token", port=port)
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


def test_run_closes_lots_by_age_and_stops_cleanly(tmp_path: Path) -> None:
    """A care sheet left in an open lot (the daemon was stopped before the lot filled): the
    running daemon closes the lot once it is older than billing.lot_max_age_s, then exits on
    SIGTERM with its periodic tasks stopped."""
    import sqlite3

    from billing_fixtures import dispensation

    from comptoir.billing import Journal

    trust = test_trust(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    key = tmp_path / "keys" / "billing.key"  # where the daemon looks: paths.keys_dir
    with Journal(data / "billing.db", key=key) as j:
        j.record(dispensation(tx="TX-AGE-1"))
        assert j.lots() == []
    cfg = write_config(tmp_path / "comptoir.toml", data_dir=data, keys_dir=tmp_path / "keys",
                       token_file=tmp_path / "api-token", extra="[billing]\nlot_max_age_s = 1\n")
    run = subprocess.Popen([str(COMPTOIR), "run", "--config", str(cfg), "--trust-dir",
                            str(trust)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        lot = None
        deadline = time.monotonic() + 20
        while lot is None and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.2)
            db = sqlite3.connect(f"file:{data / 'billing.db'}?mode=ro", uri=True, timeout=5)
            try:
                lot = db.execute("SELECT lot FROM sheet WHERE transaction_id='TX-AGE-1'"
                                 ).fetchone()[0]
            finally:
                db.close()
        assert lot == 1, run.poll()
    finally:
        run.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out = run.communicate(timeout=15)[0]
    assert run.returncode == 0, out
    assert time.monotonic() - started < 10
    assert '"lot closed by age"' in out and '"lot": 1' in out
    with Journal(data / "billing.db", key=key) as j:
        (closed,) = j.lots()
        assert closed.count == 1 and closed.first_invoice == 1


def test_run_refuses_a_rights_key_readable_by_others(tmp_path: Path) -> None:
    trust = test_trust(tmp_path)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "rights.key").write_bytes(bytes(32))
    (keys / "rights.key").chmod(0o644)
    cfg = write_config(tmp_path / "comptoir.toml", data_dir=tmp_path / "data", keys_dir=keys,
                       token_file=tmp_path / "api-token")
    run = subprocess.run([str(COMPTOIR), "run", "--config", str(cfg), "--trust-dir", str(trust)],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2, run.stderr
    assert "cannot start the services: KeyFileError" in run.stderr


def test_run_outside_systemd_keeps_its_files_private(tmp_path: Path) -> None:
    """Issue 15: without systemd's UMask the data directory ended 0755 and the databases 0644
    (the directory was made by a parent mkdir before the 0700 request); a log file in a folder
    that did not exist yet crashed `comptoir run` with a traceback."""
    import os
    import stat

    trust = test_trust(tmp_path)
    data = tmp_path / "var" / "lib" / "comptoir"
    port = free_port()
    cfg = write_config(tmp_path / "comptoir.toml", data_dir=data, keys_dir=data / "keys",
                       token_file=data / "api-token", port=port)
    text = cfg.read_text().replace("[paths]\n", f'[paths]\nlog_file = "{tmp_path}/log/sub/'
                                   'comptoir.jsonl"\n')
    cfg.write_text(text)
    old = os.umask(0o022)  # an ordinary shell's
    try:
        run = subprocess.Popen([str(COMPTOIR), "run", "--config", str(cfg), "--trust-dir",
                                str(trust)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    finally:
        os.umask(old)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and run.poll() is None:
            try:
                _get(f"http://127.0.0.1:{port}/v1/health")
                break
            except OSError:
                time.sleep(0.2)
        assert run.poll() is None
    finally:
        run.send_signal(signal.SIGTERM)
        out = run.communicate(timeout=10)[0]
    assert run.returncode == 0, out
    assert "Traceback" not in out
    assert (tmp_path / "log" / "sub" / "comptoir.jsonl").stat().st_size > 0
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.name == "transactions.db" for p in files)
    wide = {str(p.relative_to(data)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
            if p.stat().st_mode & 0o077}
    assert not wide, wide
    # A log file that cannot be made: one line, exit 2, no traceback.
    cfg.write_text(text.replace(f"{tmp_path}/log/sub/comptoir.jsonl",
                                "/proc/comptoir-cannot/comptoir.jsonl"))
    bad = subprocess.run([str(COMPTOIR), "run", "--config", str(cfg), "--trust-dir",
                          str(trust)], capture_output=True, text=True, timeout=20)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert "/proc/comptoir-cannot" in bad.stderr


def test_run_keeps_its_trust_material_current_on_a_clock_the_test_moves(tmp_path: Path) -> None:
    """`comptoir run` on COMPTOIR_CLOCK_FILE: the test makes a day and a half pass in a second.
    The daemon fetches the simulated insurer's publication ([trust] url), /v1/health says how
    old its lists are; with the publication silent the lists go into their grace (alert in the
    log and /metrics); once it publishes again, they are current."""
    import os

    from comptoir_tools.credentials.pki import load_state
    from comptoir_tools.simulators.publication import Publication

    trust = test_trust(tmp_path)
    offset = tmp_path / "clock-offset"
    offset.write_text("0")
    pub = Publication(load_state(trust),
                      clock=lambda: time.time() + float(offset.read_text())).start()
    pub.publish()
    port = free_port()
    cfg = write_config(tmp_path / "comptoir.toml", data_dir=tmp_path / "data",
                       keys_dir=tmp_path / "keys", token_file=tmp_path / "api-token", port=port,
                       extra=f'[trust]\nurl = "{pub.url}"\ncheck_every_s = 0.05\n')
    env = {**os.environ, "COMPTOIR_CLOCK_FILE": str(offset)}
    run = subprocess.Popen([str(COMPTOIR), "run", "--config", str(cfg), "--trust-dir",
                            str(trust)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env=env)
    base = f"http://127.0.0.1:{port}"

    def health_until(state: str, fetched: bool = False) -> dict:
        # The lists dropped in the trust directory make the state "ok" before the first
        # fetch from the publication: `fetched` also waits for that fetch (a loaded
        # machine can take a while to do it).
        deadline = time.monotonic() + 15
        got: dict = {}
        while time.monotonic() < deadline and run.poll() is None:
            try:
                got = _get(f"{base}/v1/health")
                if got["trust"]["state"] == state and (
                        not fetched or got["trust"]["publication"]["last_success"]):
                    return got
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError((state, got, run.poll()))

    try:
        h = health_until("ok", fetched=True)
        assert {x["kind"] for x in h["trust"]["lists"]} == {"trust", "status"}
        assert h["trust"]["publication"]["last_success"] is not None
        pub.outage = True
        offset.write_text(str(1.5 * 86400))  # a day and a half, the publication silent
        h = health_until("grace")
        assert all(x["age_s"] >= 86400 for x in h["trust"]["lists"])
        assert h["trust"]["publication"]["last_error"]
        with urllib.request.urlopen(f"{base}/metrics", timeout=2) as r:
            metrics = r.read().decode()
        assert 'comptoir_trust_list_expired{kind="trust",list="trust_list"} 1' in metrics
        pub.outage = False
        pub.publish()
        offset.write_text(str(1.5 * 86400 + 2 * 3600))  # the retry is due within the hour
        h = health_until("ok")
        assert all(x["age_s"] < 3 * 3600 for x in h["trust"]["lists"])
    finally:
        run.send_signal(signal.SIGTERM)
        out = run.communicate(timeout=10)[0]
        pub.stop()
    assert run.returncode == 0, out
    assert "trust material past its expiry" in out and "Traceback" not in out
    assert "the daemon's clock is moved by a test" in out
