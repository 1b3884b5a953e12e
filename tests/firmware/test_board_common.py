# The board layer's shared part (board/common.py): settings that survive a
# restart, and a corrupt settings file that does not brick the reader.
import os

from board.common import BoardBase


def _board(path):
    return BoardBase("t", {"name": "t"}, b"\x01\x02", {}, path)


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
    b = _board(d + "/comptoir.json")
    b.save_config({"volume": 3, "name": "caisse 2"})
    assert _board(d + "/comptoir.json").load_config() == {"volume": 3, "name": "caisse 2"}
    with open(d + "/comptoir.json", "w") as f:
        f.write("{not json")
    assert _board(d + "/comptoir.json").load_config() == {}


def test_missing_config_is_empty():
    assert _board(_tmpdir("none") + "/absent/comptoir.json").load_config() == {}
