# Boots the deployed firmware on the ESP32 port stand-in, on the MicroPython
# unix port:
#   micropython -X heapsize=N launch.py --flash DIR --uart 0=/dev/pts/4 \
#       --uart 2=/dev/pts/6 --chip esp32 [--psram] [--camera FILE] ...
# DIR is the board's filesystem as `comptoir flash` leaves it (main.py, the .mpy
# tree, board.json, provision.json). Paths the firmware opens ("/board.json")
# are DIR's. The stand-in's modules go in sys.modules under the names of the
# port's (machine, camera, esp, esp32, time, select, sys, micropython), then
# main.py runs as pyexec_file runs it: Ctrl-C on; when it ends (an exception,
# KeyboardInterrupt), the board sits at its REPL until the watchdog (if one was
# started) resets it: exit status 70; machine.reset() is 71.
import gc
import sys

_real_sys = sys
_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."


def _opts(argv):
    o = {"uart": {}, "spi": {}, "i2c": {}, "flash": None, "chip": "esp32", "psram": False,
         "camera": None, "camera_module": True, "camera_fault": False, "ticks_start": 0,
         "heap_free": 0, "internal_heap": 65536, "psram_heap": 0, "repl_baud": 115200,
         "uart_repl": True, "s3_rx_shared": True, "i2c_new_driver": True, "script": None,
         "unique_id": None, "version": "1.29", "idf_error_every_ms": 0, "clock_file": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        key = a[2:].replace("-", "_")
        if key in ("psram", "camera_fault"):
            o[key] = True
            i += 1
            continue
        if key == "no_camera_module":
            o["camera_module"] = False
            i += 1
            continue
        if key == "no_uart_repl":
            o["uart_repl"] = False
            i += 1
            continue
        val = argv[i + 1]
        if key in ("uart", "spi", "i2c"):
            n, _, spec = val.partition("=")
            o[key][int(n)] = spec
        elif key in ("ticks_start", "heap_free", "internal_heap", "psram_heap", "repl_baud",
                     "idf_error_every_ms"):
            o[key] = int(val)
        elif key in ("s3_rx_shared", "i2c_new_driver"):
            o[key] = val not in ("0", "no", "false")
        elif key in o:
            o[key] = val
        else:
            raise ValueError("unknown option " + a)
        i += 2
    return o


def _wiring(flash):
    """GPIO -> (output name, active low), from the board's definition: what is
    soldered to each pin. The CS pin of an SPI PN532."""
    import json

    try:
        with open(flash + "/board.json") as f:
            d = json.load(f)
    except OSError:
        return {}, None
    outs = {}
    for name, o in d.get("outputs", {}).items():
        outs[o["pin"]] = (name, bool(o.get("active_low")))
    cs = None
    p = d.get("pn532") or {}
    if p.get("bus") == "spi":
        cs = p["spi"]["cs"]
    return outs, cs


def _board_fs(flash):
    """builtins.open and os as the firmware sees them: "/" is the board's flash."""
    import builtins

    _p = sys.path
    sys.path = ()
    try:
        import os as real_os
    finally:
        sys.path = _p
    real_open = builtins.open

    def fix(path):
        if isinstance(path, str) and path.startswith("/"):
            return flash + path
        return path

    def board_open(path, *a, **kw):
        return real_open(fix(path), *a, **kw)

    class BoardOs:
        sep = "/"

        def rename(self, a, b):
            real_os.rename(fix(a), fix(b))

        def remove(self, p):
            real_os.remove(fix(p))

        def stat(self, p):
            return real_os.stat(fix(p))

        def listdir(self, p="/"):
            return real_os.listdir(fix(p))

        def ilistdir(self, p="/"):
            return real_os.ilistdir(fix(p))

        def mkdir(self, p):
            real_os.mkdir(fix(p))

        def rmdir(self, p):
            real_os.rmdir(fix(p))

        def getcwd(self):
            return "/"

        def chdir(self, p):
            pass

        def uname(self):
            return ("esp32", "esp32", "1.29.0", "stand-in", "ESP32 module (stand-in)")

        def __getattr__(self, name):
            return getattr(real_os, name)

    class BoardBuiltins:
        open = staticmethod(board_open)

        def __getattr__(self, name):
            return getattr(builtins, name)

    builtins.open = board_open  # the name `open` (MICROPY_CAN_OVERRIDE_BUILTINS)
    return BoardOs(), BoardBuiltins()


def main():
    o = _opts(sys.argv[1:])
    flash = o["flash"]
    sys.path.insert(0, _here)
    import _port

    cfg = _port.CFG
    cfg["chip"] = o["chip"]
    cfg["psram"] = o["psram"]
    cfg["uart_repl"] = o["uart_repl"]
    cfg["repl_baud"] = o["repl_baud"]
    cfg["s3_rx_shared"] = o["s3_rx_shared"]
    cfg["i2c_new_driver"] = o["i2c_new_driver"]
    cfg["camera"] = o["camera"]
    cfg["camera_fault"] = o["camera_fault"]
    cfg["idf_error_every_ms"] = o["idf_error_every_ms"]
    cfg["clock_file"] = o["clock_file"]
    cfg["version"] = tuple(int(x) for x in o["version"].split("."))
    cfg["uarts"] = {k: v for k, v in o["uart"].items() if k != 0}
    outs, cs = _wiring(flash)
    cfg["outputs"] = outs
    cfg["spi"] = {k: {"hsu": v, "cs": cs} for k, v in o["spi"].items()}
    cfg["i2c"] = {k: {"hsu": v} for k, v in o["i2c"].items()}
    if o["unique_id"]:
        cfg["unique_id"] = bytes.fromhex(o["unique_id"])
    _port.advance_ms(o["ticks_start"])
    # The IDF heap (internal RAM) and PSRAM: preallocated, outside the budget.
    _port.internal[0] = _port.Arena("internal", o["internal_heap"])
    _port.psram[0] = _port.Arena("psram", o["psram_heap"], signed=True)
    _port.outside[0] = _port.Arena("outside", 16384)
    repl = _port.Repl(o["uart"].get(0) if o["uart_repl"] else None, o["repl_baud"])

    import select
    import time

    import _pn532bus  # noqa: F401  (before the path goes: SPI/I2C load it on demand)
    import esp
    import esp32
    import machine

    mods = {"machine": machine, "esp": esp, "esp32": esp32, "select": select, "time": time,
            "sys": _port.SysProxy(repl), "micropython": _port.MicropythonProxy(),
            }
    mods["os"], mods["builtins"] = _board_fs(flash)
    if o["camera_module"]:
        import camera

        mods["camera"] = camera
    elif "camera" in sys.modules:
        del sys.modules["camera"]
    sys.path.remove(_here)
    for k, v in mods.items():
        sys.modules[k] = v
    # sys.path as on the board (['', '.frozen', '/lib']), in the flash directory.
    sys.path[:] = [flash, flash + "/lib"]
    gc.collect()
    # The firmware's heap: what `-X heapsize` leaves after the stand-in, cut
    # down to --heap-free by one block allocated first (it never moves).
    ballast = None
    if o["heap_free"]:
        extra = gc.mem_free() - o["heap_free"] - 64
        if extra > 0:
            ballast = bytearray(extra)
        else:
            _port.console("[esp32] stand-in: the firmware's heap is %d bytes short of "
                          "--heap-free (raise esp32_port.STANDIN_HEAP)" % -extra)
    gc.collect()
    _port.console("[esp32] stand-in: %s, MicroPython %s, ticks_ms from %d, free heap %d"
                  % (o["chip"], o["version"], o["ticks_start"], gc.mem_free()))
    _port.intr_char[0] = 3  # pyexec_file: Ctrl-C raises while main.py runs
    status = _run(o["script"] or "/main.py", flash, repl)
    del ballast
    _real_sys.exit(status)


def _run(script, flash, repl):
    import _port

    out = _port.SysProxy(repl).stdout
    try:
        with open(script) as f:  # "/main.py": the board's (builtins.open maps it)
            src = f.read()
        g = {"__name__": "__main__"}
        exec(src, g)
        why = "main.py returned"
    except SystemExit as e:
        return e.args[0] if e.args else 0
    except BaseException as e:  # as pyexec: print it, back to the REPL
        why = "main.py ended: %s" % type(e).__name__
        try:
            _real_sys.print_exception(e, out)
        except BaseException:
            pass
        _real_sys.print_exception(e)
    _port.intr_char[0] = 3
    _port.console("[esp32] %s; the board is at its REPL" % why)
    try:
        out.write(b"MicroPython (ESP32 stand-in)\r\n>>> ")
    except BaseException:
        pass
    while True:
        try:
            _port.wait(100)
            if repl.eof:
                return 0
        except KeyboardInterrupt:
            pass
        except SystemExit as e:
            return e.args[0] if e.args else 0


main()
