# The camera layer's twin backend (firmware/cam/unix.py) reading the simulated
# camera's frame file, and the --camera option. Runs under CPython and MicroPython.
import os
import struct
import sys

import cam
from cam.unix import FileCamera

from comptoir_link import frames as F

PATH = "/tmp/comptoir-test-camera-%s.bin" % sys.implementation.name


def publish(kind, w, h, seq, data, path=PATH):
    with open(path + ".tmp", "wb") as f:
        f.write(b"CF" + struct.pack("<BBHHII", kind, 0, w, h, seq, len(data)))
        f.write(data)
    os.rename(path + ".tmp", path)


def remove(path=PATH):
    try:
        os.remove(path)
    except OSError:
        pass


def test_take_option_removes_camera_only():
    argv = ["--uart", "host=/dev/pts/3", "--camera", "/tmp/f.bin", "--state", "/tmp/x"]
    rest, source = cam.take_option(argv)
    assert source == "/tmp/f.bin"
    assert rest == ["--uart", "host=/dev/pts/3", "--state", "/tmp/x"]
    assert cam.take_option(["--state", "/tmp"]) == (["--state", "/tmp"], None)


def test_no_file_is_no_frame():
    remove()
    c = FileCamera(PATH, {})
    assert c.capture() == 0


def test_frames_are_read_once_per_exposure():
    remove()
    c = FileCamera(PATH, {})
    data = bytes(range(200))
    publish(F.OBJ_FRAME_GRAY, 20, 10, 1, data)
    assert c.capture() == 200
    assert (c.kind, c.width, c.height) == (F.OBJ_FRAME_GRAY, 20, 10)
    buf = bytearray(64)
    got = bytearray()
    off = 0
    while True:
        k = c.read(off, buf)
        if not k:
            break
        got += buf[:k]
        off += k
    assert bytes(got) == data
    c.release()
    assert c.capture() == 0  # the same sequence number: nothing new
    publish(F.OBJ_FRAME_JPEG, 320, 240, 2, b"\xff\xd8" + bytes(30))
    assert c.capture() == 32 and c.kind == F.OBJ_FRAME_JPEG
    c.close()
    remove()


def test_the_frame_in_hand_survives_the_next_one():
    remove()
    c = FileCamera(PATH, {})
    publish(F.OBJ_FRAME_JPEG, 320, 240, 1, b"A" * 100)
    assert c.capture() == 100
    publish(F.OBJ_FRAME_JPEG, 320, 240, 2, b"B" * 100)  # renamed over the path
    buf = bytearray(100)
    assert c.read(0, buf) == 100 and bytes(buf) == b"A" * 100
    assert c.capture() == 100
    assert c.read(0, buf) == 100 and bytes(buf) == b"B" * 100
    c.close()
    remove()


def test_a_file_that_is_not_a_frame_is_ignored():
    with open(PATH, "wb") as f:
        f.write(b"garbage")
    assert FileCamera(PATH, {}).capture() == 0
    remove()


class _Board:
    def __init__(self, definition):
        self.definition = definition


def test_open_needs_a_source_on_unix_and_a_camera_on_the_board():
    assert cam.open(_Board({}), None) is None
    c = cam.open(_Board({"camera": {"format": "jpeg"}}), PATH)
    assert c is not None and c.capture() == 0


def test_no_decoder_in_this_build():
    assert cam.decoder() is None
