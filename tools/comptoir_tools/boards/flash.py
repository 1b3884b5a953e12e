"""Flash a reader board: MicroPython image, compiled firmware, board definition, identity.

    comptoir flash --board esp32-cam-ai-thinker --port /dev/ttyUSB0 --image FILE.bin --erase
    comptoir flash --board devkitc-pn532-spi --port /dev/ttyUSB0          # files only
    comptoir flash ... --dry-run                                          # print the commands

Steps (docs/flashing.md):
 1. validate the board definition (boards/<name>.json);
 2. compile firmware/ to .mpy with mpy-cross (main.py stays source);
 3. with --image: ask esptool which chip answers (refuse a chip the board file does
    not name), optionally erase, write the image; wait for MicroPython to boot;
 4. on a board whose host link is the REPL's UART ("repl": true), reset it (RTS)
    and stop main.py with Ctrl-C in the firmware's 1.5 s window; then ask the
    board (mpremote exec) its MicroPython and .mpy versions, platform and
    unique id; refuse a board that cannot load what mpy-cross made;
 5. deploy with mpremote: directories, .mpy files, main.py, /board.json (only the
    keys the firmware reads), /provision.json (board id and a new pairing key);
 6. read every file back on the board (sha256) and compare;
 7. record the pairing key in the host's paired boards (mode 0600), reset the board.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from comptoir_tools.boards import definitions as boards_mod
from comptoir_tools.firmware.build import FIRMWARE, ROOT, CompileError, compile_tree

# Where esptool writes the MicroPython image (micropython.org download pages):
# the ESP32's second-stage bootloader sits at 0x1000, the S3's at 0.
IMAGE_OFFSET = {"esp32": 0x1000, "esp32s3": 0x0}
ESP_IMAGE_MAGIC = 0xE9
# What the compiled tree needs: bytecode .mpy version 6 loads on 1.19+, but the
# firmware is built and tested with mpy-cross 1.29 (mpy 6.3) and uses 1.23+ APIs.
MIN_MICROPYTHON = (1, 23)
MARK = "COMPTOIR:"  # prefix of the lines our exec scripts print
DEFAULT_FLASH_BAUD = 460800
# After write-flash the board reboots and MicroPython formats its filesystem on
# the first boot; a native-USB board also re-enumerates its port.
BOOT_WAIT_S = 10.0


class FlashError(RuntimeError):
    """A step failed; the message says which and what to do."""


@dataclass(frozen=True)
class DeviceInfo:
    platform: str
    machine: str
    version: tuple[int, ...]
    mpy: int  # sys.implementation._mpy: version | sub-version << 8 | arch << 10
    unique_id: str | None

    @property
    def mpy_version(self) -> int:
        return self.mpy & 0xFF

    @property
    def mpy_sub(self) -> int:
        return (self.mpy >> 8) & 3


@dataclass
class Tools:
    esptool: list[str] = field(default_factory=lambda: [_venv_tool("esptool")])
    mpremote: list[str] = field(default_factory=lambda: [_venv_tool("mpremote")])
    # Resets the board and sends Ctrl-C until the REPL prompt (port, seconds) ->
    # True when it came: for a board whose host link is the REPL's UART.
    take_over: Callable[[str, float], bool] = field(default_factory=lambda: reset_and_interrupt)


# How long after the reset `comptoir flash` keeps sending Ctrl-C: the boot (ROM,
# MicroPython, boot.py) plus the firmware's 1.5 s window (board/esp32.py).
TAKE_OVER_S = 6.0


def reset_and_interrupt(port: str, seconds: float = TAKE_OVER_S) -> bool:
    """Reset an ESP32 through the USB bridge's RTS line (EN), as esptool's hard
    reset does (DTR, on GPIO0, stays released: a normal boot), then send Ctrl-C
    every 50 ms until the REPL's prompt shows: main.py stopped in its window,
    before the firmware switched Ctrl-C off. At 115 200 baud, the REPL's rate at
    reset whatever rate the firmware would set afterwards."""
    import serial  # pyserial, installed with mpremote and esptool

    s = serial.Serial()
    s.port, s.baudrate, s.timeout = port, 115200, 0.05
    s.dtr = s.rts = False  # set before opening: opening must not reset the board
    s.open()
    try:
        try:
            s.rts = True  # EN low: reset
            time.sleep(0.1)
            s.rts = False
        except OSError:
            pass  # no modem lines (a pty, some adapters): Ctrl-C after a manual reset
        seen = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            s.write(b"\x03")
            seen = (seen + s.read(256))[-256:]
            if b">>> " in seen or b"raw REPL" in seen:
                s.write(b"\x03")
                time.sleep(0.1)
                s.reset_input_buffer()
                return True
        return False
    finally:
        s.close()


def _venv_tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else name


Printer = Callable[[str], None]


class Runner:
    """Runs (or, in a dry run, prints) external commands; failures become FlashError."""

    def __init__(self, dry_run: bool, echo: Printer) -> None:
        self.dry_run = dry_run
        self.echo = echo
        self.commands: list[list[str]] = []

    def run(self, cmd: list[str], what: str, timeout: float = 120.0,
            stream: bool = False) -> str:
        """The command's standard output; with stream, each line is echoed as it comes
        (mpremote names every file it copies, esptool prints its percentages)."""
        self.commands.append(cmd)
        if self.dry_run:
            self.echo("  $ " + shlex.join(cmd))
            return ""
        try:
            # One stream: nothing can fill an unread stderr pipe, and the tail
            # quoted on failure keeps the tool's own order of lines.
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
        except FileNotFoundError:
            raise FlashError(f"{what}: {cmd[0]} not found (run `make setup`)") from None
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            lines = []
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if stream and line.strip():
                    self.echo("      " + line.rstrip())
            rc = proc.wait()
        finally:
            expired = not timer.is_alive()
            timer.cancel()
        out = "".join(lines)
        if expired and rc != 0:
            raise FlashError(f"{what}: no answer in {timeout:.0f} s ({shlex.join(cmd[:4])} …)")
        if rc != 0:
            tail = "\n    ".join(out.strip().splitlines()[-6:])
            raise FlashError(f"{what} failed (exit {rc}):\n    {tail}")
        return out


@dataclass
class Options:
    board: str
    port: str
    image: Path | None = None
    erase: bool = False
    board_id: str | None = None
    paired_dir: Path | None = None
    flash_baud: int = DEFAULT_FLASH_BAUD
    remote_root: str = "/"
    resume: bool = False
    reset: bool = True
    dry_run: bool = False
    build_dir: Path | None = None
    firmware_src: Path = FIRMWARE
    boot_wait_s: float = BOOT_WAIT_S
    query_timeout_s: float = 30.0


@dataclass
class Result:
    board_id: str
    files: dict[str, str]  # remote path -> sha256, all verified
    paired_file: Path | None


class Flasher:
    def __init__(self, opts: Options, tools: Tools | None = None,
                 echo: Printer | None = None) -> None:
        self.o = opts
        self.tools = tools or Tools()
        self.echo: Printer = echo or (lambda s: print(s, flush=True))
        self.runner = Runner(opts.dry_run, self.echo)
        self.out = opts.build_dir or ROOT / "build" / "flash"
        self._step = 0
        self._steps = 7 if opts.image else 5

    # ------------------------------------------------------------------ helpers
    def progress(self, text: str) -> None:
        self._step += 1
        self.echo(f"[{self._step}/{self._steps}] {text}")

    def mpremote(self, *args: str) -> list[str]:
        cmd = [*self.tools.mpremote, "connect", self.o.port]
        if self.o.resume:
            cmd.append("resume")  # no soft reset: the unix port's REPL would exit on one
        return [*cmd, *args]

    def esptool(self, *args: str, chip: str | None = None) -> list[str]:
        cmd = [*self.tools.esptool]
        if chip:
            cmd += ["--chip", chip]
        return [*cmd, "--port", self.o.port, "--baud", str(self.o.flash_baud), *args]

    def remote(self, rel: str) -> str:
        return str(PurePosixPath(self.o.remote_root) / rel)

    def _check_port(self) -> None:
        p = self.o.port
        if self.o.dry_run or "://" in p:
            return
        if not os.path.exists(p):
            raise FlashError(f"serial port {p} does not exist: is the board plugged in? "
                             "(`comptoir boards` lists the serial ports)")

    # ------------------------------------------------------------------ steps
    def run(self) -> Result:
        o = self.o
        board = boards_mod.load(o.board)
        for w in board.warnings:
            self.echo(f"warning: {w}")
        self._check_port()
        if o.image is not None:
            self._check_image(o.image)
        repl_link = bool(board.definition["uarts"]["host"].get("repl"))

        files = self._compile(board)
        if o.image is not None:
            self._write_image(board, o.image)
        if repl_link and not o.resume:
            self._take_over()
        info = self._query()
        board_id = self._board_id(info)
        key = secrets.token_bytes(32)
        with tempfile.TemporaryDirectory(prefix="comptoir-flash-") as tmp:
            os.chmod(tmp, 0o700)  # provision.json holds the pairing key
            staged = self._stage(board, board_id, key, Path(tmp))
            local = {**files, **staged}
            self._deploy(local)
            hashes = self._verify(local)
        paired = self._pair(board_id, key)
        if o.reset and not o.resume:
            self.runner.run(self.mpremote("reset"), "restarting the board", timeout=30)
        self.echo(f"done: {board.name} on {o.port}, board id {board_id}"
                  + (" (dry run: nothing was written)" if o.dry_run else ""))
        return Result(board_id, hashes, paired)

    def _check_image(self, image: Path) -> None:
        if not image.is_file():
            raise FlashError(f"image {image} does not exist (download the MicroPython build for "
                             "this board: docs/flashing.md)")
        with image.open("rb") as f:
            head = f.read(1)
        if head != bytes([ESP_IMAGE_MAGIC]):
            raise FlashError(f"{image} is not an ESP firmware image (first byte "
                             f"{head.hex() or 'missing'}, expected e9): use the .bin from the "
                             "MicroPython download page, not a .uf2, .elf or .zip")

    def _compile(self, board: boards_mod.Board) -> dict[str, Path]:
        out = self.out = self.o.build_dir or ROOT / "build" / "flash" / board.name
        self.progress(f"compiling {self.o.firmware_src} to .mpy with mpy-cross -> {out}")
        t = time.monotonic()
        try:
            compile_tree(self.o.firmware_src, out)
        except (CompileError, FileNotFoundError) as e:
            raise FlashError(f"compiling the firmware: {e}") from None
        files: dict[str, Path] = {}
        for f in sorted(out.rglob("*")):
            if f.is_file() and (f.suffix == ".mpy" or f.name == "main.py"):
                src = self.o.firmware_src / f.relative_to(out).with_suffix(".py")
                if src.exists():  # a module removed from firmware/ leaves no stale .mpy behind
                    files[f.relative_to(out).as_posix()] = f
        if "main.py" not in files:
            raise FlashError(f"compiling the firmware: no main.py in {out}")
        self.echo(f"      {len(files)} files, {sum(p.stat().st_size for p in files.values())} "
                  f"bytes ({time.monotonic() - t:.1f} s)")
        return files

    def _write_image(self, board: boards_mod.Board, image: Path) -> None:
        chip = board.chip
        self.progress(f"checking the chip on {self.o.port} with esptool (board file: {chip})")
        out = self.runner.run(self.esptool("chip-id"), "esptool chip-id", timeout=60)
        if not self.o.dry_run:
            found = parse_esptool_chip(out)
            if found is None:
                raise FlashError("esptool answered but did not name the chip:\n    "
                                 + "\n    ".join(out.strip().splitlines()[-4:]))
            if found != chip:
                known = boards_mod.CHIPS.get(found)
                raise FlashError(f"wrong chip: the board on {self.o.port} is an "
                                 f"{known.name if known else found.upper()}, but {board.name} "
                                 f"is an {boards_mod.CHIPS[chip].name} board")
        size = image.stat().st_size
        if self.o.erase:
            self.echo("      erasing the whole flash (MicroPython's filesystem too)…")
            self.runner.run(self.esptool("erase-flash", chip=chip), "esptool erase-flash",
                            timeout=180)
        self.progress(f"writing {image.name} ({size} bytes) at {IMAGE_OFFSET[chip]:#x} "
                      f"at {self.o.flash_baud} baud (~{size * 10 / self.o.flash_baud:.0f} s)")
        self.runner.run(self.esptool("write-flash", f"{IMAGE_OFFSET[chip]:#x}", str(image),
                                     chip=chip), "writing the MicroPython image", timeout=600)
        if not self.o.dry_run:
            self._wait_for_boot()

    def _take_over(self) -> None:
        # The host link is the REPL's UART: a board running Comptoir has Ctrl-C
        # switched off, so mpremote alone cannot stop it. Reset it and stop
        # main.py in the firmware's 1.5 s window (docs/flashing.md).
        self.echo(f"resetting the board on {self.o.port} and stopping main.py with Ctrl-C "
                  "(its host link is the REPL's UART)")
        if self.o.dry_run or "://" in self.o.port:
            return
        try:
            ok = self.tools.take_over(self.o.port, TAKE_OVER_S)
        except (OSError, ValueError) as e:  # serial.SerialException is an OSError
            raise FlashError(f"could not reset the board on {self.o.port}: {e}") from e
        if not ok:
            raise FlashError(f"no REPL prompt on {self.o.port} within {TAKE_OVER_S:.0f} s of a "
                             "reset: if the USB adapter has no reset line (RTS to EN), press "
                             "EN (RST) and run again within a second, or hold Ctrl-C in a "
                             "terminal while pressing EN")

    def _wait_for_boot(self) -> None:
        # The first boot formats the filesystem; a native-USB port vanishes meanwhile.
        deadline = time.monotonic() + self.o.boot_wait_s
        time.sleep(min(2.0, self.o.boot_wait_s))
        while "://" not in self.o.port and not os.path.exists(self.o.port):
            if time.monotonic() > deadline:
                raise FlashError(f"{self.o.port} did not come back after the reset")
            time.sleep(0.2)

    def _query(self) -> DeviceInfo:
        self.progress(f"asking the board on {self.o.port} for its MicroPython version")
        out = self.runner.run(self.mpremote("exec", QUERY_SCRIPT), "reaching the MicroPython "
                              "REPL (is another program using the port?)",
                              timeout=self.o.query_timeout_s)
        if self.o.dry_run:
            return DeviceInfo("esp32", "(dry run)", (1, 29, 0), 6, None)
        info = parse_query(out)
        mpy_file = self._compiled_mpy_header()
        if info.version[:2] < MIN_MICROPYTHON:
            raise FlashError(f"the board runs MicroPython {'.'.join(map(str, info.version[:3]))}"
                             f"; Comptoir needs {'.'.join(map(str, MIN_MICROPYTHON))} or newer "
                             "(flash a newer image with --image)")
        if info.mpy_version != mpy_file[0]:
            raise FlashError(f"the board loads .mpy version {info.mpy_version}, mpy-cross made "
                             f"version {mpy_file[0]}: flash a MicroPython 1.23+ image")
        if mpy_file[1] and mpy_file[1] != info.mpy_sub:
            raise FlashError(f"native .mpy sub-version {mpy_file[1]} does not match the "
                             f"board's {info.mpy_sub}")
        self._check_machine(info)
        self.echo(f"      MicroPython {'.'.join(str(v) for v in info.version[:3])} on "
                  f"{info.platform} ({info.machine}), mpy {info.mpy_version}.{info.mpy_sub}")
        return info

    def _check_machine(self, info: DeviceInfo) -> None:
        if info.platform != "esp32":
            # The unix port stands in for a board in the tests: nothing to compare.
            self.echo(f"      note: platform {info.platform!r} is not an ESP32 (a test stand-in?)")
            return
        board = boards_mod.load(self.o.board)
        found = "esp32s3" if "ESP32S3" in info.machine.upper().replace("-", "") else "esp32"
        for other in ("ESP32S2", "ESP32C3", "ESP32C6", "ESP32P4"):
            if other in info.machine.upper().replace("-", ""):
                found = other.lower()
        if found != board.chip:
            raise FlashError(f"wrong chip: the board reports {info.machine!r}, but {board.name} "
                             f"is an {boards_mod.CHIPS[board.chip].name} board")

    def _compiled_mpy_header(self) -> tuple[int, int]:
        out = self.out
        first = next(iter(sorted(out.rglob("*.mpy"))), None)
        if first is None:
            raise FlashError(f"no .mpy file in {out}")
        head = first.read_bytes()[:4]
        if len(head) < 4 or head[0:1] != b"M":
            raise FlashError(f"{first} is not an .mpy file")
        return head[1], head[2] & 3

    def _board_id(self, info: DeviceInfo) -> str:
        if self.o.board_id:
            bid = self.o.board_id.lower()
            if not re.fullmatch(r"(?:[0-9a-f]{2}){1,16}", bid):
                raise FlashError(f"--board-id {self.o.board_id!r}: give 1 to 16 bytes in hex")
            return bid
        if info.unique_id:
            return info.unique_id
        if self.o.dry_run:
            return "<the board's machine.unique_id()>"
        bid = secrets.token_hex(8)
        self.echo(f"      the board has no unique id: using a random one, {bid}")
        return bid

    def _stage(self, board: boards_mod.Board, board_id: str, key: bytes,
               tmp: Path) -> dict[str, Path]:
        bj = tmp / "board.json"
        bj.write_text(json.dumps(board.device_definition(), separators=(",", ":")))
        pj = tmp / "provision.json"
        pj.write_text(json.dumps({"board_id": board_id, "pair_key": key.hex()}))
        return {"board.json": bj, "provision.json": pj}

    def _deploy(self, local: dict[str, Path]) -> None:
        total = sum(p.stat().st_size for p in local.values())
        self.progress(f"deploying {len(local)} files ({total} bytes) with mpremote")
        dirs = sorted({str(PurePosixPath(r).parent) for r in local} - {"."})
        shadows = [self.remote(r[:-4] + ".py") for r in local if r.endswith(".mpy")]
        # One mpremote session for everything ("+" chains commands): a board soft-resets
        # at the start of each session, and mpremote names each file as it copies it.
        args = ["exec", prepare_script([self.remote(d) for d in dirs], shadows)]
        by_dir: dict[str, list[str]] = {}
        for rel in local:
            by_dir.setdefault(str(PurePosixPath(rel).parent), []).append(rel)
        for d, rels in sorted(by_dir.items()):
            target = self.remote(d) if d != "." else self.o.remote_root
            # A directory destination keeps each file's name (board.json, provision.json
            # are staged under those names).
            args += ["+", "fs", "cp", *(str(local[r]) for r in sorted(rels)),
                     ":" + target.rstrip("/") + "/"]
        self.runner.run(self.mpremote(*args), "writing the files to the board",
                        timeout=60 + total / 2000, stream=True)

    def _verify(self, local: dict[str, Path]) -> dict[str, str]:
        self.progress(f"verifying {len(local)} files on the board (sha256)")
        want = {self.remote(r): hashlib.sha256(p.read_bytes()).hexdigest()
                for r, p in local.items()}
        out = self.runner.run(self.mpremote("exec", hash_script(sorted(want))),
                              "reading the files back")
        if self.o.dry_run:
            return want
        got = parse_hashes(out)
        bad = [p for p in sorted(want) if got.get(p) != want[p]]
        if bad:
            detail = ", ".join(f"{p} ({'missing' if got.get(p) is None else 'differs'})"
                               for p in bad[:5])
            raise FlashError(f"verification failed: {len(bad)} file(s) on the board differ from "
                             f"what was written: {detail}")
        self.echo(f"      all {len(want)} files verified")
        return want

    def _pair(self, board_id: str, key: bytes) -> Path | None:
        from comptoir.pairing import PairedBoards

        paired = PairedBoards(self.o.paired_dir)
        path = paired.dir / f"{board_id}.json"
        if self.o.dry_run:
            self.echo(f"      the pairing key would be recorded in {path} (mode 0600)")
            return None
        # Only now: the host learns the key once the board verifiably holds it.
        paired.add(board_id, key)
        self.echo(f"      pairing key recorded in {path} (mode 0600)")
        return path


# ---------------------------------------------------------------------- board scripts

# Scripts run on the board with `mpremote exec`. Double quotes only, so that the
# dry run prints them as one readable single-quoted shell word.
QUERY_SCRIPT = (
    "import sys,json\n"
    "try:\n"
    " import machine,binascii\n"
    " u=binascii.hexlify(machine.unique_id()).decode()\n"
    "except Exception:\n"
    " u=None\n"
    "i=sys.implementation\n"
    f'print("{MARK}"+json.dumps({{"platform":sys.platform,"machine":getattr(i,"_machine",""),'
    '"version":list(i.version[:3]),"mpy":getattr(i,"_mpy",0),"uid":u}))\n'
)


def prepare_script(dirs: Sequence[str], shadows: Sequence[str]) -> str:
    """Make directories (parents first) and remove .py files that would shadow a .mpy:
    MicroPython imports x.py before x.mpy."""
    return (
        "import os\n"
        f"for d in {json.dumps(list(dirs))}:\n"
        ' p=""\n'
        ' for s in d.split("/"):\n'
        "  if s:\n"
        '   p+="/"+s\n'
        "   try:\n"
        "    os.mkdir(p)\n"
        "   except OSError:\n"
        "    pass\n"
        f"for f in {json.dumps(list(shadows))}:\n"
        " try:\n"
        "  os.remove(f)\n"
        " except OSError:\n"
        "  pass\n"
    )


def hash_script(paths: Sequence[str]) -> str:
    return (
        "import hashlib,binascii\n"
        "b=bytearray(512)\n"
        f"for p in {json.dumps(list(paths))}:\n"
        " try:\n"
        "  h=hashlib.sha256()\n"
        '  with open(p,"rb") as f:\n'
        "   while True:\n"
        "    n=f.readinto(b)\n"
        "    if not n:\n"
        "     break\n"
        "    h.update(b[:n])\n"
        f'  print("{MARK}"+p+" "+binascii.hexlify(h.digest()).decode())\n'
        " except OSError:\n"
        f'  print("{MARK}"+p+" missing")\n'
    )


def parse_query(out: str) -> DeviceInfo:
    for line in out.splitlines():
        if line.startswith(MARK):
            d = json.loads(line[len(MARK):])
            return DeviceInfo(d["platform"], d["machine"], tuple(d["version"]), int(d["mpy"]),
                              d["uid"])
    raise FlashError("the board answered, but not as MicroPython would:\n    "
                     + "\n    ".join(out.strip().splitlines()[-4:]))


def parse_hashes(out: str) -> dict[str, str]:
    got = {}
    for line in out.splitlines():
        if line.startswith(MARK):
            path, _, digest = line[len(MARK):].rpartition(" ")
            got[path] = digest
    return {p: d for p, d in got.items() if d != "missing"}


def parse_esptool_chip(out: str) -> str | None:
    """'Connected to ESP32-S3 on /dev/ttyACM0:' (esptool 5) or 'Chip is ESP32-S3 …' (4)."""
    m = re.search(r"(?:Connected to|Chip is|Detecting chip type\.\.\.)\s*(ESP[\w-]+)", out)
    return m.group(1).lower().replace("-", "") if m else None


# ---------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="comptoir flash",
        description="Flash a Comptoir reader board: MicroPython image (esptool), compiled "
        "firmware, board definition and pairing key (mpremote), then verify.")
    ap.add_argument("--board", required=True,
                    help=f"board name ({', '.join(boards_mod.list_boards())}) or a board file")
    ap.add_argument("--port", required=True, help="the board's REPL serial port")
    ap.add_argument("--image", type=Path,
                    help="MicroPython .bin to write first (see docs/flashing.md); "
                    "without it only the files are deployed")
    ap.add_argument("--erase", action="store_true",
                    help="erase the whole flash before writing the image (a clean filesystem)")
    ap.add_argument("--board-id", help="board id in hex (default: machine.unique_id())")
    ap.add_argument("--paired-dir", type=Path,
                    help="host directory of paired boards (default ~/.config/comptoir/boards)")
    ap.add_argument("--flash-baud", type=int, default=DEFAULT_FLASH_BAUD,
                    help="esptool baud rate")
    ap.add_argument("--remote-root", default="/",
                    help="directory on the board to deploy into (default /)")
    ap.add_argument("--resume", action="store_true",
                    help="do not soft-reset the board (mpremote resume; the unix port needs it)")
    ap.add_argument("--no-reset", dest="reset", action="store_false",
                    help="leave the board at its REPL instead of restarting it at the end")
    ap.add_argument("--build-dir", type=Path, help="where to compile (default build/flash/BOARD)")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the esptool and mpremote commands; write nothing")
    ap.add_argument("--esptool", help=argparse.SUPPRESS)  # tests: a stand-in esptool
    ap.add_argument("--mpremote", help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tools = Tools()
    if args.esptool:
        tools.esptool = shlex.split(args.esptool)
    if args.mpremote:
        tools.mpremote = shlex.split(args.mpremote)
    opts = Options(board=args.board, port=args.port, image=args.image, erase=args.erase,
                   board_id=args.board_id, paired_dir=args.paired_dir,
                   flash_baud=args.flash_baud, remote_root=args.remote_root,
                   resume=args.resume, reset=args.reset, dry_run=args.dry_run,
                   build_dir=args.build_dir)
    try:
        Flasher(opts, tools).run()
    except (FlashError, boards_mod.BoardError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
