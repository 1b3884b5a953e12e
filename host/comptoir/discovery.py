"""Finding reader boards among the PC's serial ports by USB vendor/product id."""

from __future__ import annotations

from collections.abc import Iterable

from serial.tools import list_ports

# USB-serial bridges found on ESP32 reader boards (vendor, product). Configurable:
# an integrator adds theirs in comptoir.toml.
DEFAULT_USB_IDS: tuple[tuple[int, int], ...] = (
    (0x10C4, 0xEA60),  # Silicon Labs CP210x (ESP32 DevKitC)
    (0x1A86, 0x7523),  # WCH CH340 (ESP32-CAM-MB)
    (0x303A, 0x1001),  # Espressif USB JTAG/serial (ESP32-S3 native USB)
    (0x303A, 0x4001),  # Espressif TinyUSB CDC (MicroPython on ESP32-S2/S3)
)


def parse_usb_id(text: str) -> tuple[int, int]:
    """'10c4:ea60' -> (0x10C4, 0xEA60)."""
    vid, sep, pid = text.partition(":")
    if not sep:
        raise ValueError(f"USB id {text!r} is not VID:PID")
    return int(vid, 16), int(pid, 16)


def find_boards(usb_ids: Iterable[tuple[int, int]] = DEFAULT_USB_IDS) -> list[str]:
    wanted = set(usb_ids)
    return sorted(p.device for p in list_ports.comports() if (p.vid, p.pid) in wanted)
