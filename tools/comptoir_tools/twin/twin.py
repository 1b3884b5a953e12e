"""The software twin: the real firmware on the real MicroPython interpreter,
the real host daemon, and between them the wire model over pseudo-terminals.

    firmware (main.py on the ESP32 port stand-in, micropython -X heapsize=...)
        <-pty->  WireModel  <-pty->  Daemon

Each simulated board is a FirmwareProcess (supervised as a board is: when it
exits — a watchdog reset, a crash — it is started again) behind its own
WireModel. Peripherals that cannot exist here (the PN532, the camera, the phone)
are wire-accurate simulators that later issues attach to the board's other UARTs.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from comptoir import presentations
from comptoir.daemon import Daemon
from comptoir.events import BoardUp
from comptoir.nfc_service import NfcService
from comptoir.pairing import PairedBoards
from comptoir.qr import QrPipeline
from comptoir_tools.boards import definitions as boards
from comptoir_tools.credentials.identities import Family
from comptoir_tools.firmware.build import compile_tree
from comptoir_tools.simulators import esp32_port
from comptoir_tools.simulators.camera_sim import FrameFile
from comptoir_tools.simulators.insurer import SimulatedInsurer
from comptoir_tools.simulators.pn532_sim import PN532Sim, Timing
from comptoir_tools.simulators.rights_service import RightsService
from comptoir_tools.simulators.wire import WireModel

MICROPYTHON = Path(sys.executable).with_name("micropython")
# An ESP32 without PSRAM leaves about 100 KB of heap to Python (docs/architecture.md).
DEFAULT_HEAP = "100K"
CAMERA_BOARD_HEAP = "2M"


class FirmwareProcess:
    """One reader board's firmware: the deployed tree (`firmware_build`, as
    `comptoir flash` leaves it) with its board.json and provision.json, booted
    by the ESP32 port stand-in (comptoir_tools.simulators.esp32_port) on the MicroPython
    unix port. The firmware's own board/esp32.py and cam/esp32.py run; its UARTs,
    SPI/I2C PN532, camera and outputs are the twin's.

    uarts: role -> a pty path ("stdio": the process's stdin/stdout; "socket:PATH").
    board_file: the deployed definition; None: a link-only twin board (UART1).
    heap: MicroPython's heap for the firmware; None: by the definition (PSRAM or not)."""

    def __init__(
        self,
        firmware_dir: Path,
        uarts: dict[str, Path | str],
        *,
        bauds: dict[str, int] | None = None,
        board_id: str,
        state_dir: Path,
        board_file: Path | None = None,
        pair_key: bytes | None = None,
        heap: str | None = None,
        camera: Path | None = None,
        on_line: Callable[[str], None] | None = None,
        restart: bool = True,
        before_boot: Callable[[], None] | None = None,
        port_options: list[str] | None = None,
    ) -> None:
        self.firmware_dir = firmware_dir
        self.uarts = uarts
        self.bauds = bauds or {}
        self.board_id = board_id
        self.state_dir = state_dir
        self.board_file = board_file
        self.pair_key = pair_key
        self.camera = camera
        self.heap = heap
        self.on_line = on_line
        self.restart = restart
        self.before_boot = before_boot
        self.port_options = list(port_options or [])
        self.lines: collections.deque[str] = collections.deque(maxlen=2000)
        self.exits: list[int] = []
        self._proc: subprocess.Popen[str] | None = None
        self._stopping = False
        self._supervisor: threading.Thread | None = None

    def definition(self) -> dict[str, Any]:
        if self.board_file is not None:
            d: dict[str, Any] = json.loads(Path(self.board_file).read_text())
        else:
            d = twin_definition("link", self.bauds.get("host", 115200))
        for role, baud in self.bauds.items():
            if role in d.get("uarts", {}):
                d["uarts"][role]["baud"] = baud
        return d

    def command(self) -> list[str]:
        d = self.definition()
        flash = esp32_port.deploy(self.state_dir / "flash", self.firmware_dir, d,
                                  board_id=self.board_id, pair_key=self.pair_key)
        # Without a heap size: 100 KB, or 2 MB on a board with PSRAM (a camera).
        heap = self.heap or (CAMERA_BOARD_HEAP if "camera" in d else DEFAULT_HEAP)
        return esp32_port.command(flash, d, self.uarts, heap=heap, camera=self.camera,
                                  extra=self.port_options, micropython=MICROPYTHON)

    def start(self) -> FirmwareProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                            name=f"firmware {self.board_id}")
        self._supervisor.start()
        return self

    def _spawn(self) -> None:
        self._proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, bufsize=1,
                                      errors="replace")

    def _supervise(self) -> None:
        while True:
            proc = self._proc
            assert proc is not None and proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                self.lines.append(line)
                if self.on_line:
                    self.on_line(line)
            rc = proc.wait()
            if self._stopping:
                return
            self.exits.append(rc)
            self.lines.append(f"[twin] firmware exited with status {rc}")
            if self.on_line:
                self.on_line(f"[twin] firmware exited with status {rc}")
            if not self.restart:
                return
            time.sleep(0.2)  # a board takes a moment to boot again
            if self.before_boot:
                self.before_boot()
            self._spawn()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """Pull the power: the supervisor boots it again if restart is on."""
        if self._proc is not None:
            self._proc.kill()

    def stop(self) -> None:
        self._stopping = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._supervisor is not None:
            self._supervisor.join(timeout=3)


# Twin boards that are not in boards/: ESP32 definitions with the host link on
# UART1 (a driver UART, like the Freenove S3's), the PN532 on UART2 (HSU), and
# LEDs for each verdict (the twin's display: OUT lines).
_TWIN_OUTPUTS = {"led_ready": {"pin": 25}, "led_error": {"pin": 26}, "led_ok": {"pin": 27},
                 "led_choose": {"pin": 32}, "buzzer": {"pin": 33}}


def twin_definition(kind: str, baud: int) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": "twin-" + kind.replace("+", "-"), "chip": "esp32",
        "uarts": {"host": {"id": 1, "baud": baud, "tx": 22, "rx": 21}},
        "outputs": dict(_TWIN_OUTPUTS), "features": []}
    if kind == "link":
        d["outputs"] = {k: _TWIN_OUTPUTS[k] for k in ("led_ready", "led_error")}
        return d
    if "nfc" in kind:
        d["uarts"]["pn532"] = {"id": 2, "baud": 115200, "tx": 14, "rx": 13}
        d["pn532"] = {"bus": "hsu", "uart": "pn532"}
        d["features"] += ["nfc", "buzzer"]
        # An NFC reader without a camera (an ESP32 without PSRAM): 512-byte link
        # frames are plenty and leave the heap to the PN532 driver.
        d["link"] = {"max_payload": 512}
    if "camera" in kind:
        # A camera board (ESP32-CAM class) has PSRAM: frames and the camera
        # driver live there, and MicroPython's heap is megabytes, not 100 KB.
        d["module"] = {"psram": "quad"}
        d["features"] = ["camera", *d["features"]] if "buzzer" in d["features"] else [
            "camera", "buzzer"]
        d["link"] = {"max_payload": 4096}
        d["camera"] = {"model": "OV2640", "resolution": "VGA", "format": "jpeg", "max_fps": 5}
    elif kind not in ("nfc",):
        raise ValueError(f"unknown board kind {kind!r}")
    return d


class TwinBoard:
    def __init__(self, index: int, wire: WireModel, firmware: FirmwareProcess,
                 pn532_wire: WireModel | None = None, pn532: PN532Sim | None = None) -> None:
        self.index = index
        self.wire = wire
        self.firmware = firmware
        self.pn532_wire = pn532_wire
        self.pn532 = pn532  # place(Phone(...)) / remove(): the phone on the reader
        self.camera: FrameFile | None = None  # publish(frame): what the camera sees

    @property
    def port(self) -> str:
        return str(self.wire.path_b)


def _kind_of(kind: str) -> str:
    """"board:NAME" -> "<features>@NAME", so `"nfc" in kind` works for every kind."""
    if not kind.startswith("board:"):
        return kind
    name = kind[6:]
    d = boards.load(name).definition
    feats = [f for f, on in (("camera", "camera" in d), ("nfc", "pn532" in d)) if on]
    return "+".join(feats or ["link"]) + "@" + name


def _flush(*wires: WireModel | None) -> None:
    # A rebooted board's UARTs start empty; a pty would keep stale bytes.
    for w in wires:
        if w is not None:
            w.flush_input("a")


class Twin:
    """N simulated boards and one daemon, in a working directory of their own."""

    def __init__(
        self,
        boards: int = 1,
        *,
        baud: int = 115200,
        heartbeat_ms: int = 1000,
        workdir: Path | None = None,
        seed: int = 0,
        heap: str = DEFAULT_HEAP,
        on_firmware_line: Callable[[int, str], None] | None = None,
        nfc: bool = False,
        pn532_baud: int = 115200,
        camera: bool = False,
        qr_hold: float = 5.0,
        kinds: list[str] | None = None,
        camera_baud: int | None = None,
        rights_service: bool = False,
        insurer: SimulatedInsurer | None = None,
        storage_url: str | None = None,
        counter: int = 0,
    ) -> None:
        """kinds: per board, "link" (no peripheral), "nfc", "camera", "camera+nfc",
        or "board:NAME" to run a definition from boards/ (its PN532 and camera
        simulated, its heap 100 KB without PSRAM, 2 MB with); by default every
        board is what `nfc` and `camera` say. Camera boards run at camera_baud
        (default: baud). rights_service: also run the simulated insurer's rights
        service (`self.rights_service`, on 127.0.0.1; `serve_rights` gives it families).
        Several counters of one pharmacy (issue 17): `insurer` shared by their twins (one PKI,
        the same pepper), `storage_url` the PostgreSQL server where their verifiers keep the
        replay state they share, `counter` the counter's index (in its boards' ids: the shared
        transaction store records which board saw each presentation)."""
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="comptoir-twin-")
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.n = boards
        self.baud = baud
        self.heartbeat_ms = heartbeat_ms
        self.seed = seed
        self.heap = heap
        self.on_firmware_line = on_firmware_line
        default = "+".join(k for k, on in (("camera", camera), ("nfc", nfc)) if on) or "link"
        self.kinds = kinds or [default] * boards
        if len(self.kinds) != boards:
            raise ValueError("one kind per board")
        self.kinds = [_kind_of(k) for k in self.kinds]
        self.nfc = any("nfc" in k for k in self.kinds)
        self.camera = any("camera" in k for k in self.kinds)
        self.camera_baud = camera_baud or baud
        self.qr_hold = qr_hold
        self.pn532_baud = pn532_baud
        self.boards: list[TwinBoard] = []
        self.daemon: Daemon | None = None
        self.insurer: SimulatedInsurer | None = None
        self.nfc_service: NfcService | None = None
        self.qr: QrPipeline | None = None
        self.presentations: presentations.PresentationServices | None = None
        self.rights_service: RightsService | None = RightsService() if rights_service else None
        self._given_insurer = insurer
        self.storage_url = storage_url
        self.counter = counter
        self._shared_state: Any = None
        self._up = threading.Condition()
        self._up_ports: set[str] = set()

    def start(self) -> Twin:
        if self.rights_service is not None:
            self.rights_service.start()
        fw_dir = self.workdir / "firmware"
        compile_tree(out=fw_dir)
        # Each simulated board is provisioned as `comptoir flash` would: a key in
        # the board, the same key in the host's list of paired boards.
        self.paired = PairedBoards(self.workdir / "paired")
        port_bauds: dict[str, int] = {}
        for i, kind in enumerate(self.kinds):
            baud = self.camera_baud if "camera" in kind else self.baud
            if "@" in kind:  # a definition from boards/ runs at its own host rate
                baud = boards.load(kind.split("@", 1)[1]).definition["uarts"]["host"]["baud"]
            board_file, heap = self._board_file(kind, baud)
            wire = WireModel(baud, self.workdir / "dev", name=f"board{i}", seed=self.seed + i)
            wire.start()
            port_bauds[str(wire.path_b)] = baud
            uarts: dict[str, Path | str] = {"host": wire.path_a}
            camera_file = self.workdir / f"camera{i}.frame" if "camera" in kind else None
            bauds = {"host": baud}
            pn_wire = sim = None
            if "nfc" in kind:
                # The PN532 on its own serial line (HSU), at its own rate.
                pn_wire = WireModel(self.pn532_baud, self.workdir / "dev", name=f"pn532-{i}",
                                    seed=self.seed + 1000 + i).start()
                sim = PN532Sim(path=pn_wire.path_b, timing=Timing(model_uart=False),
                               seed=self.seed + i).start()
                uarts["pn532"] = pn_wire.path_a
                bauds["pn532"] = self.pn532_baud
            cb = self.on_firmware_line
            # Unique per board, as machine.unique_id() is: counter, index, process.
            board_id = (f"{0xC0A7_0000 + ((self.counter & 0xFF) << 8) + i:08x}"
                        f"{os.getpid() & 0xFFFF:04x}{i:04x}")
            fw = FirmwareProcess(
                fw_dir, uarts, bauds=bauds,
                board_id=board_id, pair_key=self.paired.add(board_id), board_file=board_file,
                state_dir=self.workdir / f"state{i}",
                heap=heap,
                on_line=(lambda line, i=i, cb=cb: cb(i, line)) if cb else None,
                # A rebooted board's UART starts empty; a pty would keep stale bytes.
                before_boot=lambda w=wire, p=pn_wire: _flush(w, p),
                camera=camera_file,
            )
            tb = TwinBoard(i, wire, fw, pn_wire, sim)
            tb.camera = FrameFile(camera_file) if camera_file else None
            self.boards.append(tb)
        self.daemon = Daemon([b.port for b in self.boards], baud=self.baud,
                             heartbeat_ms=self.heartbeat_ms, paired=self.paired,
                             port_bauds=port_bauds)
        self.daemon.subscribe(self._track_up)
        if self.nfc or self.camera:
            self.insurer = self._given_insurer or SimulatedInsurer(self.workdir / "insurer",
                                                                   seed=self.seed + 1)
        if self.insurer is not None:
            verifier, challenges = self.insurer.verifier, self.insurer.challenges
            if self.storage_url:  # this counter's own verifier, the replay state shared
                from comptoir.tokens.challenges import ChallengeRegistry
                from comptoir.tokens.replay import load_pepper
                from comptoir.tokens.replay_pg import open_shared_state
                from comptoir.tokens.verify import Verifier

                self._shared_state = open_shared_state(
                    self.storage_url, None, pepper=load_pepper(self.insurer.workdir / "pepper"))
                challenges = ChallengeRegistry()
                verifier = Verifier(self.insurer.trust, self.insurer.status,
                                    self._shared_state, challenges)
            self.presentations = presentations.attach(
                self.daemon, verifier, challenges, qr_hold=self.qr_hold)
            self.nfc_service = self.presentations.nfc
            self.qr = self.presentations.qr
        self.daemon.start()
        for b in self.boards:
            b.firmware.start()
        return self

    def serve_rights(self, fam: Family, *, closed: list[int] | None = None) -> None:
        """The rights service knows this family (and has closed these members' rights:
        0 = the insured person, i = beneficiary i)."""
        assert self.rights_service is not None, "Twin(rights_service=True)"
        self.rights_service.add_family(fam)
        if closed:
            self.rights_service.close_rights(fam.insured.nir, members=closed)

    def _board_file(self, kind: str, baud: int) -> tuple[Path, str]:
        """The board definition a board of this kind runs, and its heap size."""
        if "@" in kind:
            # A board from boards/: deployed as `comptoir flash` would (slimmed).
            board = boards.load(kind.split("@", 1)[1])
            d = board.device_definition()
            psram = board.definition.get("module", {}).get("psram", "none") != "none"
            heap = CAMERA_BOARD_HEAP if psram else DEFAULT_HEAP
        else:
            d = twin_definition(kind, baud)
            heap = CAMERA_BOARD_HEAP if "camera" in kind else self.heap
        path = self.workdir / f"{d['name']}.json"
        path.write_text(json.dumps(d))
        return path, heap

    def _track_up(self, ev: object) -> None:
        if isinstance(ev, BoardUp):
            with self._up:
                self._up_ports.add(ev.port)
                self._up.notify_all()

    def wait_all_up(self, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._up:
            while not all(self.daemon and self.daemon.connections[b.port].up
                          for b in self.boards):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._up.wait(min(left, 0.1))
        return True

    def stop(self) -> None:
        if self.presentations is not None:
            self.presentations.stop()
        for b in self.boards:
            b.firmware.stop()
        if self.daemon:
            self.daemon.stop()
        for b in self.boards:
            b.wire.stop()
            if b.pn532:
                b.pn532.close()
            if b.pn532_wire:
                b.pn532_wire.stop()
        if self._shared_state is not None:
            self._shared_state.close()
        if self.insurer and self._given_insurer is None:  # a shared one is its owner's
            self.insurer.close()
        if self.rights_service is not None:
            self.rights_service.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Twin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
