# `esp32` of the ESP32 port (ports/esp32/modesp32.c), as far as Comptoir asks.
import _port

HEAP_DATA = 4
HEAP_EXEC = 1


def idf_heap_info(capabilities):
    # One region per arena: (total, free, largest free block, minimum free ever).
    out = []
    for a in (_port.internal[0], _port.psram[0]):
        if a.size:
            out.append((a.size, a.free(), a.free(), a.min_free))
    return out
