# Comptoir — the two commands a newcomer needs are `make run` and `make test`.
# Everything else here is what those two are made of, or what integrators and
# release engineers run (flash, hil, bench, lint, typecheck).

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# pytest-xdist workers: CI machines have 2 cores.
JOBS    ?= 2

.PHONY: run test setup sysdeps lint typecheck bench flash hil clean screen-shots

run: setup
	$(BIN)/comptoir twin $(if $(COUNTERS),--counters $(COUNTERS)) $(TWIN_ARGS)

test: setup
	$(BIN)/ruff check host tools tests firmware
	$(MAKE) --no-print-directory typecheck
	$(BIN)/pytest -n $(JOBS) $(PYTEST_ARGS)

setup: sysdeps $(STAMP)

# System libraries the Python packages load at run time (pyzbar needs libzbar0), and the
# browser the counter screen's tests drive.
sysdeps:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Comptoir needs Python 3.11 or newer")'
	@if ! $(PYTHON) -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("zbar") else 1)'; then \
		echo "Installing libzbar0 (QR decoding) with apt-get..."; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libzbar0; \
	fi
	@# The counter screen's browser tests drive Debian's headless Chromium (no browser download).
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "Installing chromium and chromium-driver (counter screen tests) with apt-get..."; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi
	@# The PostgreSQL tests start their own server with Debian's initdb and pg_ctl (no service).
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "Installing postgresql (initdb, pg_ctl for the multi-counter tests) with apt-get..."; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[tools,dev,postgres]'
	touch $@

lint: setup
	$(BIN)/ruff check host tools tests firmware

# Firmware type-checks against the ESP32 stubs (what the board really offers).
typecheck: setup
	$(BIN)/python -m comptoir_tools.firmware.typecheck

bench: setup
	$(BIN)/comptoir bench --output BENCHMARKS.md

# The counter screen's screenshots in docs/screen.md, re-made by its browser tests on the twin.
screen-shots: setup
	COMPTOIR_SCREENSHOTS=docs/screen $(BIN)/pytest -n 0 tests/screen/test_screen_browser.py

# Integrators: make flash BOARD=esp32-cam-ai-thinker PORT=/dev/ttyUSB0 [IMAGE=micropython.bin]
flash: setup
	@test -n "$(BOARD)" -a -n "$(PORT)" || { echo "usage: make flash BOARD=name PORT=/dev/ttyUSB0 [IMAGE=fw.bin]"; exit 2; }
	$(BIN)/comptoir flash --board $(BOARD) --port $(PORT) $(if $(IMAGE),--image $(IMAGE) --erase) $(FLASH_ARGS)

# Release bench: the same scenarios against a real board (no -n: one serial port).
# First a checklist at the board's REPL (tests/hil/test_00_board_checklist.py): what
# the twin's ESP32 port stand-in assumes, beside what the board does. REPL_PORT: the
# Freenove S3's native USB port (its link PORT is the CH343's).
hil: setup
	@test -n "$(BOARD)" -a -n "$(PORT)" || { echo "usage: make hil PORT=/dev/ttyUSB0 BOARD=name [REPL_PORT=/dev/ttyACM0]"; exit 2; }
	$(BIN)/pytest -s tests/hil --board-port $(PORT) --board $(BOARD) $(if $(REPL_PORT),--repl-port $(REPL_PORT)) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
