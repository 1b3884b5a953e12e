# The unix board backend (the twin's): settings that survive a restart, a corrupt
# settings file that does not brick the reader, the software watchdog, options.
import os

from board import unix
from mpcheck import raises


def _board(tmp):
    return unix.UnixBoard({"name": "t"}, {}, tmp, b"\x01\x02")


def _tmpdir(name):
    # A random suffix: MicroPython's os has no getpid.
    d = "/tmp/comptoir-test-" + name + "-" + os.urandom(4).hex()
    try:
        os.mkdir(d)
    except OSError:
        pass
    return d


def test_config_round_trip_and_corrupt_file():
    d = _tmpdir("cfg")
    b = _board(d)
    b.save_config({"volume": 3, "name": "caisse 2"})
    assert _board(d).load_config() == {"volume": 3, "name": "caisse 2"}
    with open(d + "/comptoir.json", "w") as f:
        f.write("{not json")
    assert _board(d).load_config() == {}


def test_missing_config_is_empty():
    assert _board(_tmpdir("none") + "/absent").load_config() == {}


def test_software_watchdog_resets_when_not_fed():
    b = _board(_tmpdir("wdt"))
    now = [1000]
    b.ticks_ms = lambda: now[0]
    wdt = b.watchdog(500)
    now[0] += 400
    wdt.feed()
    now[0] += 600
    e = raises(SystemExit, wdt.feed)
    assert e.args[0] == 70


def test_options_parse_roles_and_reject_unknown():
    o = unix._parse(["--uart", "host=/dev/pts/3", "--baud", "host=921600", "--board-id", "0a"])
    assert o["uart"] == {"host": "/dev/pts/3"} and o["baud"] == {"host": "921600"}
    raises(ValueError, unix._parse, ["--colour", "red"])
    raises(ValueError, unix._parse, ["--uart"])


def test_help_prints_the_options_and_exits_0():
    """`main.py --help` (issue 19): the usage, exit status 0 (it was a ValueError)."""
    e = raises(SystemExit, unix._parse, ["--help"])
    assert e.args[0] == 0
