"""Board definitions: every shipped file is valid, and each kind of broken one is refused."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from comptoir_tools.boards import definitions as B

SHIPPED = B.list_boards()


def _board(name: str) -> dict[str, Any]:
    return copy.deepcopy(B.load(name).definition)


def _errors(d: dict[str, Any]) -> list[str]:
    return [f"{i.where}: {i.message}" for i in B.check(d) if i.level == "error"]


def _warnings(d: dict[str, Any]) -> list[str]:
    return [f"{i.where}: {i.message}" for i in B.check(d) if i.level == "warning"]


def test_the_three_required_boards_are_shipped():
    assert {"esp32-cam-ai-thinker", "freenove-esp32s3-cam", "devkitc-pn532-spi"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_board_is_valid_without_warnings(name):
    board = B.load(name)
    assert board.name == name == board.path.stem
    assert board.warnings == []


@pytest.mark.parametrize("name", SHIPPED)
def test_device_definition_keeps_what_the_firmware_reads_and_nothing_else(name):
    full = B.load(name).definition
    dev = B.device_definition(full)
    # firmware/board/esp32.py and firmware/app.py read these
    assert dev["name"] == name and dev["features"] == full["features"]
    for role, u in full["uarts"].items():
        assert {k: dev["uarts"][role][k] for k in ("id", "baud", "tx", "rx")} == {
            k: u[k] for k in ("id", "baud", "tx", "rx")}
        assert "via" not in dev["uarts"][role]
    assert {n: o["pin"] for n, o in dev["outputs"].items()} == {
        n: o["pin"] for n, o in full["outputs"].items()}
    assert not set(B.DOC_ONLY_KEYS) & set(dev)
    text = json.dumps(dev, separators=(",", ":"))
    assert len(text) < 1200, "the deployed definition stays small: it lives on the board's heap"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = d
        for p in parents:
            node = node.setdefault(p, {})
        if value is _DELETE:
            del node[last]
        else:
            node[last] = copy.deepcopy(value)
    return mutate


_DELETE = object()
_CAMERA = B.load("esp32-cam-ai-thinker").definition["camera"]

BROKEN: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    ("two-functions", "devkitc-pn532-spi", _set("outputs.led_error.pin", 25), "two functions"),
    ("spi-vs-led", "devkitc-pn532-spi", _set("outputs.buzzer.pin", 18), "two functions"),
    ("camera-vs-uart", "esp32-cam-ai-thinker", _set("uarts.pn532.rx", 22), "two functions"),
    ("onboard-held", "freenove-esp32s3-cam", _set("outputs.buzzer.pin", 48), "two functions"),
    ("flash-pin", "devkitc-pn532-spi", _set("outputs.led_ready.pin", 6), "SPI flash"),
    ("psram-pin-esp32", "esp32-cam-ai-thinker", _set("outputs.led_error.pin", 16), "PSRAM"),
    ("octal-psram-s3", "freenove-esp32s3-cam", _set("outputs.led_error.pin", 35), "octal PSRAM"),
    ("flash-s3", "freenove-esp32s3-cam", _set("outputs.led_error.pin", 28), "SPI flash"),
    ("native-usb", "freenove-esp32s3-cam", _set("outputs.led_error.pin", 19), "native USB"),
    ("input-only-output", "devkitc-pn532-spi", _set("outputs.led_error.pin", 35), "input-only"),
    ("input-only-tx", "devkitc-pn532-spi", _set("uarts.host.tx", 36), "input-only"),
    ("input-only-cs", "devkitc-pn532-spi", _set("pn532.spi.cs", 39), "input-only"),
    ("no-such-gpio", "devkitc-pn532-spi", _set("outputs.buzzer.pin", 20), "does not exist"),
    ("no-such-gpio-s3", "freenove-esp32s3-cam", _set("outputs.buzzer.pin", 23), "does not exist"),
    ("camera-on-devkitc", "devkitc-pn532-spi", _set("camera", _CAMERA), "no camera connector"),
    ("camera-no-psram", "devkitc-pn532-spi", _set("camera", _CAMERA), "need PSRAM"),
    ("camera-feature-only", "devkitc-pn532-spi", _set("features", ["nfc", "buzzer", "camera"]),
     "without a camera section"),
    ("camera-not-in-features", "esp32-cam-ai-thinker", _set("features", ["nfc", "buzzer"]),
     "'camera' is not in features"),
    ("nfc-without-pn532", "devkitc-pn532-spi", _set("pn532", _DELETE), "without a pn532"),
    ("buzzer-without-pin", "devkitc-pn532-spi", _set("outputs.buzzer", _DELETE), "buzzer"),
    ("display", "devkitc-pn532-spi", _set("features", ["nfc", "buzzer", "display"]), "display"),
    ("no-led-ready", "devkitc-pn532-spi", _set("outputs.led_ready", _DELETE), "led_ready"),
    ("baud-low", "devkitc-pn532-spi", _set("uarts.host.baud", 1200), "outside what the UART"),
    ("baud-high", "freenove-esp32s3-cam", _set("uarts.pn532.baud", 6_000_000), "outside"),
    ("baud-bridge", "devkitc-pn532-spi", _set("uarts.host.baud", 2_000_000), "cp2102"),
    ("baud-ch340", "esp32-cam-ai-thinker", _set("uarts.host.baud", 3_000_000), "ch340"),
    ("pn532-hsu-baud", "esp32-cam-ai-thinker", _set("uarts.pn532.baud", 250000), "HSU does not"),
    ("pn532-spi-fast", "devkitc-pn532-spi", _set("pn532.spi.baudrate", 10_000_000), "at most"),
    ("pn532-hsu-no-uart", "esp32-cam-ai-thinker", _set("pn532.uart", "nfc"), "name its UART"),
    ("pn532-on-host", "esp32-cam-ai-thinker", _set("pn532.uart", "host"), "cannot share"),
    ("pn532-spi-and-uart", "devkitc-pn532-spi", _set("pn532.uart", "host"), "has no UART"),
    ("pn532-spi-no-pins", "devkitc-pn532-spi", _set("pn532.spi", _DELETE), "give its pins"),
    ("pn532-i2c-fast", "devkitc-pn532-spi", lambda d: d.update(pn532={
        "bus": "i2c", "i2c": {"id": 0, "sda": 21, "scl": 22, "freq": 1_000_000,
                              "timeout_us": 2000}}), "I2C runs at most"),
    ("same-uart-id", "esp32-cam-ai-thinker", _set("uarts.pn532.id", 0), "already used"),
    ("octal-on-esp32", "devkitc-pn532-spi", _set("module.psram", "octal"), "no octal PSRAM"),
    ("rxbuf", "freenove-esp32s3-cam", _set("uarts.host.rxbuf", 256), "receive buffer"),
    ("native-usb-on-esp32", "devkitc-pn532-spi", _set("usb.native", True), "no native USB"),
    ("repl-native-unset", "freenove-esp32s3-cam", _set("usb.native", False), "REPL on native"),
    # structure (schema)
    ("schema-missing-name", "devkitc-pn532-spi", _set("name", _DELETE), "'name' is a required"),
    ("schema-unknown-key", "devkitc-pn532-spi", _set("pins", {}), "Additional properties"),
    ("schema-pin-string", "devkitc-pn532-spi", _set("outputs.led_ready.pin", "25"),
     "not of type 'integer'"),
    ("schema-pin-range", "devkitc-pn532-spi", _set("outputs.led_ready.pin", 60), "maximum"),
    ("schema-chip", "devkitc-pn532-spi", _set("chip", "esp8266"), "esp8266"),
    ("schema-no-host", "devkitc-pn532-spi", _set("uarts", {}), "'host' is a required"),
    ("schema-bad-feature", "devkitc-pn532-spi", _set("features", ["nfc", "wifi"]), "wifi"),
    ("schema-payload", "devkitc-pn532-spi", _set("link.max_payload", 65536), "maximum"),
    ("repl-uart-unsaid", "devkitc-pn532-spi", _set("uarts.host.repl", _DELETE), "REPL's UART"),
    ("repl-not-uart0", "freenove-esp32s3-cam", _set("uarts.host.repl", True), "REPL's UART"),
    ("repl-buffers", "esp32-cam-ai-thinker", _set("uarts.host.rxbuf", 8192), "ignored"),
    ("schema-repl", "devkitc-pn532-spi", _set("uarts.host.repl", "yes"), "boolean"),
]


@pytest.mark.parametrize(("base", "mutate", "expected"), [b[1:] for b in BROKEN],
                         ids=[b[0] for b in BROKEN])
def test_broken_definition_is_refused(base, mutate, expected):
    d = _board(base)
    mutate(d)
    errors = _errors(d)
    assert any(expected in e for e in errors), errors


def test_strapping_pin_without_reason_warns_and_a_reason_silences_it():
    d = _board("devkitc-pn532-spi")
    d["outputs"]["led_error"]["pin"] = 12
    assert _errors(d) == []
    assert any("GPIO12 is a strapping pin" in w and "flash voltage" in w for w in _warnings(d))
    d["strapping_ok"] = {"12": "external pull-down of 10 k holds it low at reset"}
    assert _warnings(d) == []


def test_stale_strapping_reason_warns():
    d = _board("esp32-cam-ai-thinker")
    d["strapping_ok"]["12"] = "nothing is wired on GPIO12 any more"
    d["strapping_ok"]["13"] = "GPIO13 is not a strapping pin at all"
    w = _warnings(d)
    assert any("GPIO12 is not used" in x for x in w) and any("GPIO13 is not a strapping" in x
                                                                for x in w)


def test_i2c_pn532_without_long_timeout_warns():
    d = _board("devkitc-pn532-spi")
    d["pn532"] = {"bus": "i2c", "i2c": {"id": 0, "sda": 21, "scl": 22, "freq": 100000}}
    assert _errors(d) == []
    assert any("440" in w for w in _warnings(d))


def test_pn532_other_rate_warns():
    d = _board("esp32-cam-ai-thinker")
    d["uarts"]["pn532"]["baud"] = 921600
    assert _errors(d) == [] and any("SetSerialBaudrate" in w for w in _warnings(d))


def test_host_link_off_the_bridge_warns():
    d = _board("devkitc-pn532-spi")
    d["uarts"]["host"].update(id=1, tx=16, rx=17)
    del d["uarts"]["host"]["repl"]
    assert _errors(d) == [] and any("another adapter" in w for w in _warnings(d))


def test_load_refuses_name_that_differs_from_file_and_lists_every_error(tmp_path):
    d = _board("devkitc-pn532-spi")
    d["outputs"]["led_error"]["pin"] = 25
    p = tmp_path / "renamed.json"
    p.write_text(json.dumps(d))
    with pytest.raises(B.BoardError) as e:
        B.load(p)
    msg = str(e.value)
    assert "differs from the file name" in msg and "two functions" in msg


def test_load_errors_for_missing_and_unparsable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no board named 'nope'"):
        B.load("nope")
    with pytest.raises(FileNotFoundError):
        B.load(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(B.BoardError, match="not JSON"):
        B.load(bad)


def test_max_frame_bytes_matches_the_protocol_doc():
    # docs/protocol.md §2: a 4096-byte payload costs 4096 + 9 + 17 + 2 = 4124 bytes on the line.
    assert B.max_frame_bytes(4096) == 4124


def test_cli_check_and_list(tmp_path, capsys):
    assert B.main(["list"]) == 0
    assert capsys.readouterr().out.split() == SHIPPED
    assert B.main(["check"]) == 0
    d = _board("devkitc-pn532-spi")
    d["outputs"]["led_error"]["pin"] = 6
    p = tmp_path / "devkitc-pn532-spi.json"
    p.write_text(json.dumps(d))
    assert B.main(["check", str(p)]) == 1
    assert "SPI flash" in capsys.readouterr().err


def test_schema_file_is_a_valid_json_schema():
    import jsonschema  # type: ignore[import-untyped]

    jsonschema.Draft202012Validator.check_schema(B.schema())


@pytest.mark.parametrize("name", SHIPPED)
def test_board_files_are_plain_json_for_micropython(name):
    # MicroPython's json has no NaN/Infinity and wants plain UTF-8 text.
    raw = (Path(B.BOARDS_DIR) / f"{name}.json").read_bytes()
    raw.decode("utf-8")
    json.loads(raw, parse_constant=lambda c: pytest.fail(f"{name}: constant {c}"))
