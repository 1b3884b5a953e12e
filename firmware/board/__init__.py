# The board layer: everything the application needs from the hardware, behind
# one small interface. One backend: board/esp32.py, on an ESP32 and, in the
# software twin, on the ESP32 port stand-in (tools/comptoir_tools/simulators/esp32_port).
#
#   board = board.open(argv)        -> a Board
#   board.name, board.board_id      -> str, bytes
#   board.uart(role)                -> UART-like: read(n)/readinto(buf)/write(buf)/any()
#                                      read* return None when nothing is waiting (as machine.UART)
#   board.wait(uarts, timeout_ms)   -> block until one of them is readable or the time is up
#   board.output(name, value)       -> LED, buzzer, ... (names from the board definition)
#   board.random_bytes(n), board.watchdog(timeout_ms).feed(), board.free_heap()
#   board.load_config() / board.save_config(dict)  -> persistent settings (JSON)
#   board.ticks_ms / ticks_diff / sleep_ms


def open(argv=None):
    # Imported when called: `import board` (app.py) also works where there is no
    # `machine` (CPython, for the firmware's tests).
    from board.esp32 import open as esp32_open

    return esp32_open(argv)
