# Parts of the board layer that every backend shares.
import gc
import json
import time


class BoardBase:
    """Shared behaviour of the backends."""

    def __init__(self, name, definition, board_id, uarts, config_path):
        self.name = name
        self.definition = definition
        self.board_id = board_id
        self._uarts = uarts
        self._config_path = config_path

    ticks_ms = staticmethod(time.ticks_ms)
    ticks_diff = staticmethod(time.ticks_diff)
    sleep_ms = staticmethod(time.sleep_ms)

    def uart(self, role):
        u = self._uarts.get(role)
        if u is None:
            raise KeyError("board has no UART for role %r" % role)
        return u

    def has_uart(self, role):
        return role in self._uarts

    def free_heap(self):
        return gc.mem_free()

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
