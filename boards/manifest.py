# Freezes the Comptoir reader firmware into a MicroPython image, for integrators
# who build their own (the modules then live in flash, not in RAM: the ~40 kB of
# .mpy that a board otherwise loads into its heap at start, docs/architecture.md):
#
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/comptoir/boards/manifest.py
#
# (add the camera module for the camera boards: micropython-camera-API's build).
# main.py is not frozen: the boot sequence runs /main.py from the filesystem, so
# `comptoir flash` still deploys it, with /board.json and /provision.json; a
# frozen module is found before a .mpy of the same name only if no file shadows
# it, so deploy nothing else. Every module `comptoir flash` deploys is named
# here (tests/tools/test_manifest.py checks it): a new firmware file must be added.
include("$(PORT_DIR)/boards/manifest.py")

module("app.py", base_path="../firmware", opt=3)
module("bench_task.py", base_path="../firmware", opt=3)
module("board/__init__.py", base_path="../firmware", opt=3)
module("board/common.py", base_path="../firmware", opt=3)
module("board/esp32.py", base_path="../firmware", opt=3)
module("board/stdio.py", base_path="../firmware", opt=3)
module("cam/__init__.py", base_path="../firmware", opt=3)
module("cam/esp32.py", base_path="../firmware", opt=3)
module("comptoir_link/__init__.py", base_path="../firmware", opt=3)
module("comptoir_link/board_side.py", base_path="../firmware", opt=3)
module("comptoir_link/cobs.py", base_path="../firmware", opt=3)
module("comptoir_link/compat.py", base_path="../firmware", opt=3)
module("comptoir_link/cpython_compat.py", base_path="../firmware", opt=3)
module("comptoir_link/frames.py", base_path="../firmware", opt=3)
module("comptoir_link/host_side.py", base_path="../firmware", opt=3)
module("comptoir_link/link.py", base_path="../firmware", opt=3)
module("comptoir_link/names.py", base_path="../firmware", opt=3)
module("comptoir_link/pairing.py", base_path="../firmware", opt=3)
module("frame_forwarder.py", base_path="../firmware", opt=3)
module("nfc_reader.py", base_path="../firmware", opt=3)
module("nfc_task.py", base_path="../firmware", opt=3)
module("pn532/__init__.py", base_path="../firmware", opt=3)
module("pn532/apdu.py", base_path="../firmware", opt=3)
module("pn532/chip.py", base_path="../firmware", opt=3)
module("pn532/cpython_sleep.py", base_path="../firmware", opt=3)
module("pn532/errors.py", base_path="../firmware", opt=3)
module("pn532/frame.py", base_path="../firmware", opt=3)
module("pn532/transport.py", base_path="../firmware", opt=3)
