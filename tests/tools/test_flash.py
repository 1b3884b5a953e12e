"""`comptoir flash` without hardware: the exact commands in dry run, the compiled tree,
the deploy step with the real mpremote against the MicroPython unix port behind a
pseudo-terminal, and every error path (with stand-in esptool/mpremote where a real
board would be needed to fail)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import textwrap
import threading
import tty
from pathlib import Path

import pytest

from comptoir_tools.boards import definitions as B
from comptoir_tools.boards import flash as FL
from comptoir_tools.boards.hil import UnixPortRepl
from comptoir_tools.firmware.build import FIRMWARE

PY = sys.executable


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("build")


@pytest.fixture
def image(tmp_path) -> Path:
    p = tmp_path / "ESP32_GENERIC-20250415-v1.25.0.bin"
    p.write_bytes(b"\xe9" + bytes(4095))
    return p


def _flasher(build_dir, tmp_path, **kw) -> tuple[FL.Flasher, list[str]]:
    lines: list[str] = []
    tools = kw.pop("tools", None)
    opts = FL.Options(board=kw.pop("board", "devkitc-pn532-spi"),
                      port=kw.pop("port", "/dev/ttyUSB0"), build_dir=build_dir,
                      paired_dir=tmp_path / "paired", **kw)
    return FL.Flasher(opts, tools or FL.Tools(esptool=["esptool"], mpremote=["mpremote"]),
                      echo=lines.append), lines


# ---------------------------------------------------------------------- compile


def test_compiled_tree_is_mpy_6_bytecode_plus_main_source(build_dir, tmp_path):
    f, _ = _flasher(build_dir, tmp_path, dry_run=True)
    files = f._compile(B.load("devkitc-pn532-spi"))
    sources = {p.relative_to(FIRMWARE).as_posix() for p in FIRMWARE.rglob("*.py")
               if "__pycache__" not in p.parts}
    assert set(files) == {s if s == "main.py" else s[:-3] + ".mpy" for s in sources}
    assert files["main.py"].read_bytes() == (FIRMWARE / "main.py").read_bytes()
    for rel, p in files.items():
        if rel.endswith(".mpy"):
            head = p.read_bytes()[:4]
            # 'M', version 6, sub-version 0 (bytecode only, so any 6.x board loads it)
            assert head[:2] == b"M\x06" and head[2] & 3 == 0, rel
    assert f._compiled_mpy_header() == (6, 0)


# ---------------------------------------------------------------------- dry run


def test_dry_run_prints_the_exact_esptool_and_mpremote_commands(build_dir, tmp_path, image):
    f, lines = _flasher(build_dir, tmp_path, board="esp32-cam-ai-thinker", image=image,
                        erase=True, dry_run=True, board_id="c0ffee01")
    res = f.run()
    cmds = f.runner.commands
    assert cmds[0] == ["esptool", "--port", "/dev/ttyUSB0", "--baud", "460800", "chip-id"]
    assert cmds[1] == ["esptool", "--chip", "esp32", "--port", "/dev/ttyUSB0", "--baud",
                       "460800", "erase-flash"]
    assert cmds[2] == ["esptool", "--chip", "esp32", "--port", "/dev/ttyUSB0", "--baud",
                       "460800", "write-flash", "0x1000", str(image)]
    assert cmds[3] == ["mpremote", "connect", "/dev/ttyUSB0", "exec", FL.QUERY_SCRIPT]
    deploy = cmds[4]
    assert deploy[:4] == ["mpremote", "connect", "/dev/ttyUSB0", "exec"]
    chunks = " ".join(deploy).split(" + ")
    # prepare, then one cp per directory of the compiled tree (/, board, cam, link, pn532...)
    dirs = {p.parent for p in build_dir.rglob("*") if p.is_file()}
    assert len(chunks) == 1 + len(dirs)
    top = chunks[1].split()
    assert top[:2] == ["fs", "cp"] and top[-1] == ":/"
    assert [Path(p).name for p in top[2:-1]] == sorted(
        ["app.mpy", "board.json", "main.py", "nfc_reader.mpy", "provision.json"]
        + [p.name[:-3] + ".mpy" for p in FIRMWARE.glob("*.py")
           if p.name not in ("app.py", "main.py", "nfc_reader.py")])
    assert any(c.split()[-1] == ":/pn532/" for c in chunks)
    assert cmds[5][:4] == ["mpremote", "connect", "/dev/ttyUSB0", "exec"]
    assert "hashlib.sha256" in cmds[5][4] and '"/provision.json"' in cmds[5][4]
    assert cmds[6] == ["mpremote", "connect", "/dev/ttyUSB0", "reset"]
    assert len(cmds) == 7
    # every command was printed, shell-quoted, and nothing was recorded on the host
    printed = [x for x in lines if x.startswith("  $ ")]
    assert len(printed) == 7 and printed[2].endswith("write-flash 0x1000 " + str(image))
    assert [x for x in lines if x.startswith("[")] == [
        x for x in lines if x[:1] == "[" and x[2:4] == "/7"]
    assert res.paired_file is None and not (tmp_path / "paired").exists()


def test_dry_run_s3_writes_at_offset_zero_and_files_only_skips_esptool(build_dir, tmp_path,
                                                                       image):
    f, _ = _flasher(build_dir, tmp_path, board="freenove-esp32s3-cam", image=image,
                    dry_run=True, port="/dev/ttyACM0")
    f.run()
    write = f.runner.commands[1]
    assert write[:3] == ["esptool", "--chip", "esp32s3"] and write[-2:] == ["0x0", str(image)]
    f2, lines = _flasher(build_dir, tmp_path, dry_run=True, resume=True)
    f2.run()
    assert all(c[0] == "mpremote" for c in f2.runner.commands)
    assert all(c[3] == "resume" for c in f2.runner.commands)
    assert len(f2.runner.commands) == 3  # query, deploy, verify: no reset with resume
    assert lines[0].startswith("[1/5]")


def test_cli_dry_run_exit_code_and_output(capsys, build_dir, image):
    rc = FL.main(["--board", "esp32-cam-ai-thinker", "--port", "/dev/ttyUSB9", "--image",
                  str(image), "--dry-run", "--build-dir", str(build_dir)])
    out = capsys.readouterr().out
    assert rc == 0 and "write-flash 0x1000" in out and "dry run: nothing was written" in out
    # its host link is the REPL's UART: the flash resets it and stops main.py first
    assert "stopping main.py with Ctrl-C" in out


# ---------------------------------------------------------------------- deploy, for real


def test_deploy_with_real_mpremote_to_the_unix_port(build_dir, tmp_path):
    fs = tmp_path / "fs"
    fs.mkdir()
    # a stale source file that would shadow the new .mpy (MicroPython imports .py first)
    (fs / "app.py").write_text("raise SystemExit('stale')\n")
    with UnixPortRepl() as repl:
        f, lines = _flasher(build_dir, tmp_path, port=repl.port, resume=True,
                            remote_root=str(fs), tools=FL.Tools())
        res = f.run()
    assert not (fs / "app.py").exists()
    assert (fs / "app.mpy").read_bytes()[:2] == b"M\x06"
    for remote, digest in res.files.items():
        assert hashlib.sha256(Path(remote).read_bytes()).hexdigest() == digest, remote
    assert json.loads((fs / "board.json").read_text()) == B.load(
        "devkitc-pn532-spi").device_definition()
    prov = json.loads((fs / "provision.json").read_text())
    assert prov["board_id"] == res.board_id and len(bytes.fromhex(prov["pair_key"])) == 32
    # the host learned the very key the board holds, in a file only its owner reads
    assert res.paired_file == tmp_path / "paired" / f"{res.board_id}.json"
    assert stat.S_IMODE(res.paired_file.stat().st_mode) == 0o600
    assert json.loads(res.paired_file.read_text())["pair_key"] == prov["pair_key"]
    assert any(f"all {len(res.files)} files verified" in x for x in lines)
    assert any("cp " in x and "board.json" in x for x in lines), "mpremote progress shown"
    assert any("MicroPython 1." in x and "mpy 6.3" in x for x in lines)


# ---------------------------------------------------------------------- error paths

FAKE = textwrap.dedent('''
    import sys, os, json, time
    mode = os.environ.get("FAKE_MODE", "")
    args = sys.argv[1:]
    if os.environ["FAKE_TOOL"] == "esptool":
        if "chip-id" in args:
            if mode == "chip-s3":
                print("esptool v5.6.0\\nConnected to ESP32-S3 on /dev/x:\\nChip type: ESP32-S3")
            elif mode == "chip-silent":
                print("esptool v5.6.0\\nsomething else")
            elif mode == "no-chip":
                print("A fatal error occurred: Failed to connect to Espressif device: "
                      "No serial data received.", file=sys.stderr)
                sys.exit(2)
            else:
                print("esptool v5.6.0\\nConnected to ESP32 on /dev/x:\\nChip type: ESP32-D0WD-V3")
        elif "write-flash" in args and mode == "write-fails":
            print("Writing at 0x00011000 [====>    ] 23.1%")
            print("A fatal error occurred: Packet content transfer stopped", file=sys.stderr)
            sys.exit(2)
        sys.exit(0)
    # mpremote
    if "exec" in args and "sys.implementation" in args[args.index("exec") + 1]:
        if mode == "no-repl":
            print("mpremote: could not enter raw repl", file=sys.stderr)
            sys.exit(1)
        info = {"platform": "esp32", "machine": "Generic ESP32 module with ESP32",
                "version": [1, 25, 0], "mpy": 6 | 3 << 8 | 10 << 10, "uid": "a0b1c2d3e4f5"}
        if mode == "old":
            info["version"] = [1, 22, 2]
        if mode == "mpy5":
            info["mpy"] = 5
        if mode == "machine-s3":
            info["machine"] = "Generic ESP32S3 module with Octal-SPIRAM with ESP32S3"
        if mode == "garbage":
            print("Traceback: nonsense")
            sys.exit(0)
        print("COMPTOIR:" + json.dumps(info))
        sys.exit(0)
    if "fs" in args and mode == "cp-fails":
        print("cp /x/app.mpy :/app.mpy")
        print("mpremote: cp: /app.mpy: No space left on device", file=sys.stderr)
        sys.exit(1)
    if "exec" in args and "hashlib" in args[args.index("exec") + 1]:
        if mode == "slow":
            time.sleep(30)
        script = args[args.index("exec") + 1]
        start = script.index("[")
        paths = json.loads(script[start:script.index("]", start) + 1])
        for p in paths:
            print("COMPTOIR:" + p + (" 00" * 1 if mode != "lost" else " missing"))
    sys.exit(0)
''')


@pytest.fixture
def fake_tools(tmp_path) -> FL.Tools:
    script = tmp_path / "fake_tool.py"
    script.write_text(FAKE)
    # one script plays both tools; the wrapper says which
    for name in ("esptool", "mpremote"):
        link = tmp_path / f"{name}-fake"
        link.write_text(f"#!{PY}\nimport os, runpy\nos.environ['FAKE_TOOL'] = {name!r}\n"
                        f"runpy.run_path({str(script)!r}, run_name='__main__')\n")
        link.chmod(0o755)
    return FL.Tools(esptool=[str(tmp_path / "esptool-fake")],
                    mpremote=[str(tmp_path / "mpremote-fake")],
                    take_over=lambda port, s: True)


@pytest.fixture
def port(tmp_path) -> str:
    p = tmp_path / "ttyFAKE0"
    p.touch()
    return str(p)


def _run_fake(build_dir, tmp_path, fake_tools, port, mode, monkeypatch, **kw) -> FL.Flasher:
    monkeypatch.setenv("FAKE_MODE", mode)
    f, _ = _flasher(build_dir, tmp_path, port=port, tools=fake_tools, boot_wait_s=0, **kw)
    return f


@pytest.mark.parametrize(("mode", "kw", "expected"), [
    ("chip-s3", {"image": True}, "wrong chip: the board on .* is an ESP32-S3, but "
     "devkitc-pn532-spi is an ESP32 board"),
    ("chip-silent", {"image": True}, "did not name the chip"),
    ("no-chip", {"image": True}, "esptool chip-id failed .*Failed to connect"),
    ("write-fails", {"image": True}, "writing the MicroPython image failed .*transfer stopped"),
    ("no-repl", {}, "reaching the MicroPython REPL .* failed .*could not enter raw repl"),
    ("old", {}, "MicroPython 1.22.2; Comptoir needs 1.23"),
    ("mpy5", {}, ".mpy version 5, mpy-cross made version 6"),
    ("machine-s3", {}, "wrong chip: the board reports .*ESP32S3.*ESP32 board"),
    ("garbage", {}, "not as MicroPython would"),
    ("cp-fails", {}, "writing the files to the board failed .*No space left"),
    ("", {}, "verification failed: [0-9]+ file\\(s\\)"),
    ("lost", {}, "verification failed: .*/app.mpy \\(missing\\)"),
])
def test_error_paths_stop_with_a_clear_message(build_dir, tmp_path, fake_tools, port, image,
                                               monkeypatch, mode, kw, expected):
    if kw.get("image"):
        kw = {"image": image}
    f = _run_fake(build_dir, tmp_path, fake_tools, port, mode, monkeypatch, **kw)
    with pytest.raises(FL.FlashError, match="(?s)" + expected):
        f.run()
    # a failed flash never records a pairing key on the host
    assert not (tmp_path / "paired").exists()


def test_good_fake_board_full_run_with_image(build_dir, tmp_path, fake_tools, port, image,
                                             monkeypatch):
    # the fake hashes everything as "00": swap in digests of what was written
    monkeypatch.setattr(FL, "parse_hashes", lambda out: {
        p: d for p, d in f._want.items()})
    f = _run_fake(build_dir, tmp_path, fake_tools, port, "", monkeypatch, image=image)
    orig = f._verify

    def verify(local):
        f._want = {f.remote(r): hashlib.sha256(p.read_bytes()).hexdigest()
                   for r, p in local.items()}
        return orig(local)

    f._verify = verify  # type: ignore[method-assign]
    res = f.run()
    assert res.board_id == "a0b1c2d3e4f5"  # machine.unique_id(), as the firmware uses
    assert [c[1] for c in f.runner.commands[:3]] == ["--port", "--chip", "connect"]
    assert f.runner.commands[-1][-1] == "reset"
    assert (tmp_path / "paired" / "a0b1c2d3e4f5.json").exists()


def test_missing_port(build_dir, tmp_path, capsys):
    rc = FL.main(["--board", "devkitc-pn532-spi", "--port", "/dev/ttyUSB77",
                  "--build-dir", str(build_dir)])
    assert rc == 1
    assert "serial port /dev/ttyUSB77 does not exist" in capsys.readouterr().err


def test_missing_or_wrong_image(build_dir, tmp_path, port, capsys):
    assert FL.main(["--board", "devkitc-pn532-spi", "--port", port, "--image",
                    str(tmp_path / "nope.bin")]) == 1
    assert "does not exist" in capsys.readouterr().err
    uf2 = tmp_path / "fw.uf2"
    uf2.write_bytes(b"UF2\n" + bytes(100))
    assert FL.main(["--board", "devkitc-pn532-spi", "--port", port, "--image", str(uf2)]) == 1
    assert "not an ESP firmware image" in capsys.readouterr().err


def test_unknown_or_invalid_board(tmp_path, port, capsys):
    assert FL.main(["--board", "no-such-board", "--port", port]) == 1
    assert "no board named" in capsys.readouterr().err
    d = B.load("devkitc-pn532-spi").definition | {"features": ["nfc", "camera"]}
    bad = tmp_path / "devkitc-pn532-spi.json"
    bad.write_text(json.dumps(d))
    assert FL.main(["--board", str(bad), "--port", port]) == 1
    assert "not valid" in capsys.readouterr().err


def test_bad_board_id(build_dir, tmp_path, fake_tools, port, monkeypatch):
    f = _run_fake(build_dir, tmp_path, fake_tools, port, "", monkeypatch, board_id="xyz")
    with pytest.raises(FL.FlashError, match="--board-id"):
        f.run()


def test_runner_timeout_and_missing_tool():
    r = FL.Runner(False, lambda s: None)
    with pytest.raises(FL.FlashError, match="no answer in 0 s"):
        r.run([PY, "-c", "import time; time.sleep(10)"], "waiting", timeout=0.3)
    with pytest.raises(FL.FlashError, match="not found"):
        r.run(["/nonexistent/esptool"], "esptool")


def test_parse_esptool_chip_both_generations():
    assert FL.parse_esptool_chip("Connected to ESP32-S3 on /dev/ttyACM0:") == "esp32s3"
    assert FL.parse_esptool_chip("Chip is ESP32-D0WD-V3 (revision v3.1)") == "esp32d0wdv3"
    assert FL.parse_esptool_chip("Connected to ESP32 on /dev/ttyUSB0:") == "esp32"
    assert FL.parse_esptool_chip("nothing") is None


def test_no_mpremote_against_a_silent_port_is_an_error_not_a_hang(build_dir, tmp_path):
    # a pty nobody answers on: the real mpremote gives up, and so do we
    master, slave = os.openpty()
    try:
        f, _ = _flasher(build_dir, tmp_path, port=os.ttyname(slave), resume=True,
                        tools=FL.Tools(), query_timeout_s=3)
        with pytest.raises(FL.FlashError, match="reaching the MicroPython REPL"):
            f.run()
    finally:
        os.close(master)
        os.close(slave)


# ------------------------------------------------- a board whose link is the REPL's UART

def test_repl_link_board_is_taken_over_before_the_query(build_dir, tmp_path, fake_tools, port,
                                                        monkeypatch):
    calls: list[tuple[str, int]] = []

    def take_over(p: str, s: float) -> bool:
        calls.append((p, len(f.runner.commands)))
        return False  # no prompt came

    fake_tools.take_over = take_over
    f = _run_fake(build_dir, tmp_path, fake_tools, port, "", monkeypatch)
    with pytest.raises(FL.FlashError, match=r"no REPL prompt .* press EN"):
        f.run()
    assert calls == [(port, 0)]  # before any mpremote command
    assert not (tmp_path / "paired").exists()


def test_board_with_its_own_host_port_is_not_reset(build_dir, tmp_path, fake_tools, port,
                                                   monkeypatch):
    fake_tools.take_over = lambda p, s: pytest.fail("the S3's link is not the REPL's")
    f = _run_fake(build_dir, tmp_path, fake_tools, port, "", monkeypatch,
                  board="freenove-esp32s3-cam")
    # the fake answers as an ESP32: the run got to the query without a reset
    with pytest.raises(FL.FlashError, match="wrong chip: the board reports"):
        f.run()


def test_reset_and_interrupt_sends_ctrl_c_until_the_prompt():
    master, slave = os.openpty()
    tty.setraw(slave)
    got = bytearray()

    def board() -> None:
        # A board still booting ignores the first Ctrl-Cs, then main.py stops.
        while got.count(3) < 5:
            got.extend(os.read(master, 64))
        os.write(master, b"Traceback ...\r\nKeyboardInterrupt: \r\n>>> ")

    t = threading.Thread(target=board, daemon=True)
    t.start()
    try:
        assert FL.reset_and_interrupt(os.ttyname(slave), 5.0)
        t.join(2)
        assert set(got) == {3}
        # and it gives up when nothing answers
        assert not FL.reset_and_interrupt(os.ttyname(slave), 0.3)
    finally:
        os.close(master)
        os.close(slave)
