"""Board definitions: load, validate, and slim them for the board.

A board definition is a JSON file in `boards/` (docs/boards.md). The firmware
parses it with MicroPython's json on the board (/board.json) and on the twin
(--board-file), so it must stay plain data. Here, on CPython, it is checked
twice before anyone flashes it:

* structure against `boards/schema.json` (JSON Schema 2020-12);
* meaning, which a schema cannot say: two functions on one pin, pins the
  module reserves (flash, PSRAM, native USB), input-only pins driven, strapping
  pins used without a stated reason, baud rates a UART, a USB bridge or the
  PN532 cannot do, a camera on a board without a connector or PSRAM, features
  without the hardware behind them.

    python -m comptoir_tools.boards.definitions check [NAME|FILE ...]   # all boards by default
    python -m comptoir_tools.boards.definitions list
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[3]
BOARDS_DIR = ROOT / "boards"
SCHEMA_PATH = BOARDS_DIR / "schema.json"

# Keys the firmware never reads: documentation and validation only. They are
# dropped from the copy deployed as /board.json, because on an ESP32 without
# PSRAM every string of the parsed definition stays on the heap for good.
DOC_ONLY_KEYS = ("schema", "description", "references", "module", "usb", "onboard",
                 "strapping_ok")
DOC_ONLY_SUBKEYS = ("via", "note")

UART_MIN_BAUD = 9600
UART_MAX_BAUD = 5_000_000  # ESP32 and ESP32-S3 UARTs: APB 80 MHz / 16
# What the USB-UART bridge chips can carry (datasheet maxima).
BRIDGE_MAX_BAUD = {
    "cp2102": 1_000_000,
    "cp2102n": 3_000_000,
    "ch340": 2_000_000,
    "ch343": 6_000_000,
    "ch9102": 4_000_000,
}
# SetSerialBaudrate's rates (docs: shared pn532 notes §1); the chip powers up at 115200.
PN532_HSU_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1288000)
PN532_SPI_MAX_HZ = 5_000_000
PN532_I2C_MAX_HZ = 400_000
# The PN532 stretches the I2C clock ~440 µs; ESP-IDF's default timeout is shorter.
PN532_I2C_MIN_TIMEOUT_US = 1000
FIRMWARE_DEFAULT_RXBUF = 8192  # firmware/board/esp32.py
DEFAULT_MAX_PAYLOAD = 4096  # firmware/comptoir_link/frames.py
REQUIRED_OUTPUTS = ("led_ready", "led_error")  # firmware/app.py drives them

Direction = Literal["out", "in", "io", "held"]


@dataclass(frozen=True)
class Chip:
    name: str
    gpios: frozenset[int]
    flash: frozenset[int]
    psram: dict[str, frozenset[int]]  # PSRAM kind -> pins it takes beyond flash
    input_only: frozenset[int]
    strapping: dict[int, str]
    console: tuple[int, int]  # UART0 TX/RX: the ROM boot log, and the bridge's pins
    native_usb: tuple[int, int] | None
    uart_ids: frozenset[int] = frozenset({0, 1, 2})


CHIPS: dict[str, Chip] = {
    "esp32": Chip(
        name="ESP32",
        gpios=frozenset([*range(0, 20), 21, 22, 23, 25, 26, 27, *range(32, 40)]),
        flash=frozenset(range(6, 12)),
        psram={"none": frozenset(), "quad": frozenset({16, 17})},
        input_only=frozenset(range(34, 40)),
        strapping={
            0: "boot mode: low at reset enters the download mode",
            2: "boot mode: must be low or floating for the download mode",
            5: "SDIO slave timing",
            12: "MTDI selects the flash voltage: high at reset means 1.8 V and no boot",
            15: "MTDO: the ROM boot log on UART0, SDIO timing",
        },
        console=(1, 3),
        native_usb=None,
    ),
    "esp32s3": Chip(
        name="ESP32-S3",
        gpios=frozenset([*range(0, 22), *range(26, 49)]),
        flash=frozenset(range(26, 33)),
        psram={"none": frozenset(), "quad": frozenset(), "octal": frozenset(range(33, 38))},
        input_only=frozenset(),
        strapping={
            0: "boot mode: low at reset enters the download mode",
            3: "JTAG signal source",
            45: "VDD_SPI voltage",
            46: "boot mode and ROM log",
        },
        console=(43, 44),
        native_usb=(19, 20),
    ),
}


@dataclass(frozen=True)
class Issue:
    level: Literal["error", "warning"]
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


class BoardError(ValueError):
    def __init__(self, source: str, issues: list[Issue]) -> None:
        self.source = source
        self.issues = issues
        errors = [i for i in issues if i.level == "error"]
        lines = "\n  ".join(str(i) for i in errors)
        super().__init__(f"board definition {source} is not valid:\n  {lines}")


@dataclass
class Board:
    name: str
    path: Path
    definition: dict[str, Any]
    warnings: list[Issue] = field(default_factory=list)

    @property
    def chip(self) -> str:
        return str(self.definition["chip"])

    def device_definition(self) -> dict[str, Any]:
        return device_definition(self.definition)


@cache
def schema() -> dict[str, Any]:
    with SCHEMA_PATH.open() as f:
        result: dict[str, Any] = json.load(f)
    return result


def list_boards(directory: Path = BOARDS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.json") if p.name != SCHEMA_PATH.name)


def board_path(name_or_path: str | Path, directory: Path = BOARDS_DIR) -> Path:
    """A board by name (boards/<name>.json) or by path to its file."""
    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        return p
    candidate = directory / f"{name_or_path}.json"
    if not candidate.exists():
        known = ", ".join(list_boards(directory)) or "none"
        raise FileNotFoundError(f"no board named {name_or_path!r} (known: {known})")
    return candidate


def load(name_or_path: str | Path, directory: Path = BOARDS_DIR) -> Board:
    """Read and validate a board definition; BoardError lists every error found."""
    path = board_path(name_or_path, directory)
    try:
        with path.open() as f:
            definition = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"board file {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise BoardError(str(path), [Issue("error", "(file)", f"not JSON: {e}")]) from None
    issues = check(definition)
    if isinstance(definition, dict) and definition.get("name") not in (None, path.stem):
        issues.append(Issue("error", "name", f"{definition['name']!r} differs from the "
                            f"file name {path.stem!r} (boards are found by file name)"))
    if any(i.level == "error" for i in issues):
        raise BoardError(str(path), issues)
    return Board(definition["name"], path, definition, [i for i in issues if i.level == "warning"])


def device_definition(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition as deployed: only what the firmware reads."""
    out: dict[str, Any] = {}
    for key, value in definition.items():
        if key in DOC_ONLY_KEYS:
            continue
        out[key] = _strip(value)
    return out


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in DOC_ONLY_SUBKEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def max_frame_bytes(max_payload: int) -> int:
    """Line bytes of the largest frame: header 5 + CRC 4, COBS overhead, two delimiters."""
    body = max_payload + 9
    return body + (body + 253) // 254 + 2


# ---------------------------------------------------------------------------- checks


def check(definition: Any) -> list[Issue]:
    """Every problem of a definition: schema first, then meaning (when the shape is right)."""
    validator = jsonschema.Draft202012Validator(schema())
    issues = [
        Issue("error", "/".join(str(p) for p in e.absolute_path) or "(top)", e.message)
        for e in sorted(validator.iter_errors(definition), key=lambda e: list(e.absolute_path))
    ]
    if issues:
        return issues  # the semantic checks assume the structure is right
    return _Checker(definition).run()


class _Checker:
    def __init__(self, d: dict[str, Any]) -> None:
        self.d = d
        self.chip = CHIPS[d["chip"]]
        self.issues: list[Issue] = []
        # pin -> [(function, direction)]
        self.claims: dict[int, list[tuple[str, Direction]]] = {}

    def err(self, where: str, msg: str) -> None:
        self.issues.append(Issue("error", where, msg))

    def warn(self, where: str, msg: str) -> None:
        self.issues.append(Issue("warning", where, msg))

    def claim(self, pin: int, function: str, direction: Direction) -> None:
        self.claims.setdefault(pin, []).append((function, direction))

    def run(self) -> list[Issue]:
        self._collect()
        self._pins()
        self._uarts()
        self._features()
        self._pn532()
        self._camera()
        return self.issues

    # -- who uses which pin
    def _collect(self) -> None:
        d = self.d
        for role, u in d["uarts"].items():
            self.claim(u["tx"], f"uarts.{role}.tx", "out")
            self.claim(u["rx"], f"uarts.{role}.rx", "in")
        for name, o in d["outputs"].items():
            self.claim(o["pin"], f"outputs.{name}", "out")
        pn = d.get("pn532")
        if pn:
            if pn.get("spi"):
                s = pn["spi"]
                spi_dirs: tuple[tuple[str, Direction], ...] = (
                    ("sck", "out"), ("mosi", "out"), ("miso", "in"), ("cs", "out"))
                for key, direction in spi_dirs:
                    self.claim(s[key], f"pn532.spi.{key}", direction)
            if pn.get("i2c"):
                self.claim(pn["i2c"]["sda"], "pn532.i2c.sda", "io")
                self.claim(pn["i2c"]["scl"], "pn532.i2c.scl", "io")
            if "irq" in pn:
                self.claim(pn["irq"], "pn532.irq", "in")
            if "reset" in pn:
                self.claim(pn["reset"], "pn532.reset", "out")
        cam = d.get("camera")
        if cam:
            for key, pin in cam["pins"].items():
                if pin < 0:
                    continue  # not wired (the sensor's own pull-up or a soft reset)
                cam_dir: Direction = "in"
                if key in ("pwdn", "reset", "xclk", "scl"):
                    cam_dir = "out"
                elif key == "sda":
                    cam_dir = "io"
                self.claim(pin, f"camera.pins.{key}", cam_dir)
        for part, pins in d.get("onboard", {}).items():
            for pin in pins:
                self.claim(pin, f"onboard.{part}", "held")

    def _pins(self) -> None:
        chip, d = self.chip, self.d
        psram_kind = d["module"]["psram"]
        if psram_kind not in chip.psram:
            self.err("module.psram", f"{chip.name} modules have no {psram_kind} PSRAM")
        psram_pins = chip.psram.get(psram_kind, frozenset())
        usb_pins = set(chip.native_usb or ()) if d["usb"].get("native") else set()
        if d["usb"].get("native") and chip.native_usb is None:
            self.err("usb.native", f"{chip.name} has no native USB")
        if d["usb"]["repl"] == "native" and not d["usb"].get("native"):
            self.err("usb.repl", "REPL on native USB, but usb.native is not true")
        if d["usb"]["repl"] == "bridge" and not d["usb"].get("bridge"):
            self.err("usb.bridge", "REPL on a USB bridge, but no bridge chip named")
        for pin in sorted(self.claims):
            users = self.claims[pin]
            names = " and ".join(f for f, _ in users)
            where = users[0][0]
            if pin not in chip.gpios:
                self.err(where, f"GPIO{pin} does not exist on the {chip.name}")
                continue
            if len(users) > 1:
                self.err(where, f"GPIO{pin} has two functions: {names}")
            if pin in chip.flash:
                self.err(where, f"GPIO{pin} belongs to the module's SPI flash ({names})")
            if pin in psram_pins:
                self.err(where, f"GPIO{pin} belongs to the module's {psram_kind} PSRAM ({names})")
            if pin in usb_pins:
                self.err(where, f"GPIO{pin} is a native USB data line ({names})")
            for function, direction in users:
                if pin in chip.input_only and direction in ("out", "io"):
                    self.err(function, f"GPIO{pin} is input-only on the {chip.name}: it cannot "
                             "drive an output")
            if pin in chip.strapping and str(pin) not in d.get("strapping_ok", {}):
                self.warn(where, f"GPIO{pin} is a strapping pin ({chip.strapping[pin]}); "
                          "say in strapping_ok why its level at reset is safe")
        for key in d.get("strapping_ok", {}):
            pin = int(key)
            if pin not in chip.strapping:
                self.warn(f"strapping_ok.{key}", f"GPIO{pin} is not a strapping pin")
            elif pin not in self.claims:
                self.warn(f"strapping_ok.{key}", f"GPIO{pin} is not used by this board")

    def _uarts(self) -> None:
        d, chip = self.d, self.chip
        seen: dict[int, str] = {}
        for role, u in d["uarts"].items():
            where = f"uarts.{role}"
            if u["id"] not in chip.uart_ids:
                self.err(where, f"{chip.name} has no UART{u['id']}")
            if u["id"] in seen:
                self.err(where, f"UART{u['id']} is already used by role {seen[u['id']]!r}")
            seen[u["id"]] = role
            if not UART_MIN_BAUD <= u["baud"] <= UART_MAX_BAUD:
                self.err(f"{where}.baud", f"{u['baud']} baud is outside what the UART does "
                         f"({UART_MIN_BAUD}..{UART_MAX_BAUD})")
        # The REPL's UART: UART0 when the REPL is on the USB bridge. MicroPython
        # keeps its own handler there (Ctrl-C, its stdin buffer), so the firmware
        # must know: "repl": true makes it use stdin/stdout with Ctrl-C off.
        for role, u in d["uarts"].items():
            where = f"uarts.{role}"
            is_repl = u["id"] == 0 and d["usb"]["repl"] == "bridge"
            if is_repl and not u.get("repl"):
                self.err(where, "UART0 is the REPL's UART (usb.repl is \"bridge\"): say "
                         "\"repl\": true, the firmware then runs the link over stdin/stdout")
            elif u.get("repl") and not is_repl:
                self.err(f"{where}.repl", "only UART0 of a board whose REPL is on the USB "
                         "bridge is the REPL's UART")
            if u.get("repl"):
                if role != "host":
                    self.err(f"{where}.repl", "only the host link may share the REPL's UART")
                for key in ("rxbuf", "txbuf", "timeout_char"):
                    if key in u:
                        self.err(f"{where}.{key}", "the REPL's UART keeps MicroPython's own "
                                 "buffers: this setting would be ignored")
                # machine.UART(0, baudrate=...) raises OSError on the REPL's UART
                # (ports/esp32 machine_uart.c, >= 1.23; review finding 1): the firmware
                # never changes its rate, so the link runs at the image's REPL rate.
                image_baud = u.get("image_baud", 115200)
                if u["baud"] != image_baud:
                    self.err(f"{where}.baud", f"the REPL's UART runs at the image's rate "
                             f"({image_baud}; MICROPY_HW_UART_REPL_BAUD, \"image_baud\"): "
                             f"{u['baud']} baud would need machine.UART(0), which raises "
                             "OSError there")
            elif "image_baud" in u:
                self.err(f"{where}.image_baud", "only the REPL's UART has an image rate")
        host = d["uarts"]["host"]
        bridge = d["usb"].get("bridge")
        on_bridge = (host["tx"], host["rx"]) == chip.console or d["usb"]["repl"] == "native"
        if bridge and on_bridge and host["baud"] > BRIDGE_MAX_BAUD[bridge]:
            self.err("uarts.host.baud", f"{host['baud']} baud is more than the {bridge} USB "
                     f"bridge carries ({BRIDGE_MAX_BAUD[bridge]})")
        if bridge and d["usb"]["repl"] == "bridge" and (host["tx"], host["rx"]) != chip.console:
            self.warn("uarts.host", f"the host link is not on the USB bridge's pins "
                      f"(GPIO{chip.console[0]}/{chip.console[1]}): the PC needs another adapter")
        payload = d.get("link", {}).get("max_payload", DEFAULT_MAX_PAYLOAD)
        rxbuf = host.get("rxbuf", FIRMWARE_DEFAULT_RXBUF)
        frame = max_frame_bytes(payload)
        if rxbuf < frame and not host.get("repl"):
            self.err("uarts.host.rxbuf", f"a {payload}-byte payload makes {frame}-byte frames, "
                     f"more than the {rxbuf}-byte receive buffer")

    def _features(self) -> None:
        d = self.d
        features = set(d["features"])
        for name in REQUIRED_OUTPUTS:
            if name not in d["outputs"]:
                self.err("outputs", f"{name!r} is missing: the firmware shows the link state on it")
        pairs = (("nfc", "pn532" in d, "a pn532 section"),
                 ("camera", "camera" in d, "a camera section"),
                 ("buzzer", "buzzer" in d["outputs"], "an outputs.buzzer pin"))
        for feature, present, what in pairs:
            if feature in features and not present:
                self.err("features", f"feature {feature!r} without {what}")
            if present and feature not in features:
                self.err("features", f"{what} is defined but {feature!r} is not in features")
        if "display" in features:
            self.err("features", "feature 'display' has no pin definition in schema 1 yet")

    def _pn532(self) -> None:
        pn = self.d.get("pn532")
        if not pn:
            return
        bus = pn["bus"]
        for other in ("spi", "i2c"):
            if other != bus and other in pn:
                self.err(f"pn532.{other}", f"the PN532 is on {bus}, not {other}")
        if bus == "hsu":
            role = pn.get("uart")
            if role is None or role not in self.d["uarts"]:
                self.err("pn532.uart", f"the PN532 is on HSU: name its UART role "
                         f"(one of {sorted(self.d['uarts'])})")
            elif role == "host":
                self.err("pn532.uart", "the PN532 cannot share the host link's UART")
            else:
                baud = self.d["uarts"][role]["baud"]
                if baud not in PN532_HSU_BAUDS:
                    self.err(f"uarts.{role}.baud", f"the PN532 HSU does not run at {baud} baud "
                             f"(it does {', '.join(map(str, PN532_HSU_BAUDS))})")
                elif baud != 115200:
                    self.warn(f"uarts.{role}.baud", "the PN532 powers up at 115200 baud; the "
                              "driver must switch it (SetSerialBaudrate) first")
        else:
            if "uart" in pn:
                self.err("pn532.uart", f"the PN532 is on {bus}: it has no UART")
            if bus not in pn:
                self.err("pn532", f"the PN532 is on {bus}: give its pins in pn532.{bus}")
            elif bus == "spi" and pn["spi"]["baudrate"] > PN532_SPI_MAX_HZ:
                self.err("pn532.spi.baudrate", f"the PN532 SPI runs at most "
                         f"{PN532_SPI_MAX_HZ} Hz")
            elif bus == "i2c":
                if pn["i2c"]["freq"] > PN532_I2C_MAX_HZ:
                    self.err("pn532.i2c.freq", f"the PN532 I2C runs at most {PN532_I2C_MAX_HZ} Hz")
                if pn["i2c"].get("timeout_us", 0) < PN532_I2C_MIN_TIMEOUT_US:
                    self.warn("pn532.i2c.timeout_us", "the PN532 stretches the clock ~440 µs: "
                              f"set timeout_us to {PN532_I2C_MIN_TIMEOUT_US} or more")

    def _camera(self) -> None:
        d = self.d
        if "camera" not in d:
            return
        module = d["module"]
        if not module.get("camera_connector", False):
            self.err("camera", f"the board ({module['name']}) has no camera connector")
        if module["psram"] == "none":
            self.err("camera", "the camera drivers need PSRAM for their frame buffers; "
                     f"{module['name']} has none")


# ---------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m comptoir_tools.boards.definitions",
                                 description="Check and list Comptoir board definitions.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    chk = sub.add_parser("check", help="validate board files (all of boards/ by default)")
    chk.add_argument("boards", nargs="*")
    sub.add_parser("list", help="list the board names")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for name in list_boards():
            print(name)
        return 0
    failed = 0
    for item in args.boards or list_boards():
        try:
            board = load(item)
        except (BoardError, FileNotFoundError) as e:
            print(e, file=sys.stderr)
            failed += 1
            continue
        print(f"{board.name}: ok ({board.path})")
        for w in board.warnings:
            print(f"  {w}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
