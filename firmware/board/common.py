# Parts of the board layer that every backend shares.
import gc
import json
import sys

from comptoir_link.compat import ticks_diff, ticks_ms

try:
    from time import sleep_ms
except ImportError:  # CPython, when board tests run there
    from comptoir_link.cpython_compat import sleep_ms  # type: ignore


class BoardBase:
    """Shared behaviour of the backends."""

    def __init__(self, name, definition, board_id, uarts, config_path):
        self.name = name
        self.definition = definition
        self.board_id = board_id
        self._uarts = uarts
        self._config_path = config_path
        self.pair_key = None  # provisioned at flashing: proves this board to its host
        # Where the firmware's own messages go: None when stdout is the host link
        # (the REPL's UART on a board, --uart host=stdio on the twin).
        self.log = sys.stdout

    ticks_ms = staticmethod(ticks_ms)
    ticks_diff = staticmethod(ticks_diff)
    sleep_ms = staticmethod(sleep_ms)

    def uart(self, role):
        u = self._uarts.get(role)
        if u is None:
            raise KeyError("board has no UART for role %r" % role)
        return u

    def has_uart(self, role):
        return role in self._uarts

    def pn532_spec(self):
        """How the PN532 is wired: the board definition's "pn532" section, or
        (the twin) a UART named "pn532". None when the board has no PN532."""
        spec = self.definition.get("pn532")
        if spec is None and "pn532" in self._uarts:
            spec = {"bus": "hsu", "uart": "pn532"}
        return spec

    def pn532_transport(self):
        spec = self.pn532_spec()
        if spec is None:
            return None
        from pn532.transport import UartTransport

        if spec.get("bus", "hsu") == "hsu":
            return UartTransport(self.uart(spec.get("uart", "pn532")))
        return self._pn532_bus(spec)

    def _pn532_bus(self, spec):
        raise OSError("PN532 bus %r is not available on this board" % spec.get("bus"))

    def free_heap(self):
        # gc.mem_free is MicroPython's; under CPython (tests) there is no heap cap.
        f = getattr(gc, "mem_free", None)
        return f() if f else 1 << 30

    def load_config(self):
        try:
            with open(self._config_path) as f:
                return json.load(f)
        except OSError:
            return {}
        except ValueError:
            # A corrupt settings file must not brick the reader: start from defaults.
            return {}

    def save_config(self, cfg):
        tmp = self._config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(cfg, f)
        import os

        os.rename(tmp, self._config_path)
