"""The host admits only paired boards: unknown id, no key, wrong key and a
replayed HELLO are refused by name; a paired board is admitted."""

from __future__ import annotations

import hmac
import os
import queue
import stat
import sys
import threading
import time
import tty
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comptoir.board_link import BoardConnection
from comptoir.events import BoardRefused, BoardUp
from comptoir.pairing import PairedBoards
from comptoir_link import frames as F
from comptoir_link import pairing
from comptoir_link.board_side import BoardLink
from comptoir_link.link import UP

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))
BOARD_ID = b"\x01\x02\x03\x04"


@given(key=st.binary(max_size=200), msg=st.binary(max_size=300))
def test_shared_hmac_matches_the_standard_library(key: bytes, msg: bytes) -> None:
    assert pairing.hmac_sha256(key, msg) == hmac.new(key, msg, "sha256").digest()


def test_registry_files_are_private_and_ids_are_checked(tmp_path: Path) -> None:
    reg = PairedBoards(tmp_path / "boards")
    key = reg.add("01020304")
    assert len(key) == 32 and reg.key_for("01020304") == key
    assert stat.S_IMODE((tmp_path / "boards" / "01020304.json").stat().st_mode) == 0o600
    assert reg.key_for("ffffffff") is None
    assert reg.key_for("../../etc/passwd") is None
    (tmp_path / "boards" / "0badf00d.json").write_text("{corrupt")
    assert reg.key_for("0badf00d") is None


class FakeBoard:
    """A board's link in this process, on the master side of a pty whose slave
    the BoardConnection opens as its serial port."""

    def __init__(self, key: bytes | None, board_id: bytes = BOARD_ID) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave  # keep the pty alive while the connection reopens
        self.sent = bytearray()
        self.link = BoardLink(self._write, hello_items={F.T_BOARD_ID: board_id},
                         random_bytes=os.urandom, pair_key=key)
        self.downs: list[str] = []
        self.link.on_down = self.downs.append
        self._stop = threading.Event()
        self.replay: bytes | None = None
        self._t = threading.Thread(target=self._run, daemon=True)

    def _write(self, data: Any) -> None:
        b = bytes(data)
        self.sent += b
        os.write(self.master, b)

    def _run(self) -> None:
        os.set_blocking(self.master, False)
        while not self._stop.is_set():
            try:
                data = os.read(self.master, 4096)
            except BlockingIOError:
                data = b""
            if self.replay is None:
                if data:
                    self.link.feed(data)
                self.link.poll()
            time.sleep(0.002)

    def start(self) -> FakeBoard:
        self._t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._t.join()
        os.close(self.master)
        os.close(self._slave)


def _serve(path: str, reg: PairedBoards) -> tuple[BoardConnection, queue.Queue[Any]]:
    q: queue.Queue[Any] = queue.Queue()
    conn = BoardConnection(path, q, heartbeat_ms=200, paired=reg)
    conn.start()
    return conn, q


def _first(q: queue.Queue[Any], kinds: tuple[type, ...], timeout: float = 8) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ev = q.get(timeout=0.1)
        except queue.Empty:
            continue
        if isinstance(ev, kinds):
            return ev
    raise AssertionError(f"no {kinds} within {timeout} s")


@pytest.fixture
def registry(tmp_path: Path) -> PairedBoards:
    return PairedBoards(tmp_path / "paired")


def test_paired_board_is_admitted(registry: PairedBoards) -> None:
    board = FakeBoard(registry.add(BOARD_ID.hex())).start()
    conn, q = _serve(board.path, registry)
    try:
        ev = _first(q, (BoardUp, BoardRefused))
        assert isinstance(ev, BoardUp) and ev.board.board_id == BOARD_ID.hex()
        assert conn.up and board.link.state == UP
    finally:
        conn.stop()
        board.stop()


@pytest.mark.parametrize("case", ["unknown board", "no key", "wrong key"])
def test_unpaired_boards_are_refused_by_name(registry: PairedBoards, case: str) -> None:
    if case == "unknown board":
        board = FakeBoard(os.urandom(32))
        expect = "not paired"
    elif case == "no key":
        registry.add(BOARD_ID.hex())
        board = FakeBoard(None)
        expect = "no pairing proof"
    else:
        registry.add(BOARD_ID.hex())
        board = FakeBoard(os.urandom(32))
        expect = "does not match"
    board.start()
    conn, q = _serve(board.path, registry)
    try:
        ev = _first(q, (BoardUp, BoardRefused))
        assert isinstance(ev, BoardRefused) and expect in ev.reason
        deadline = time.monotonic() + 5
        while not any(expect in d for d in board.downs) and time.monotonic() < deadline:
            time.sleep(0.02)
        # The board is told why, by name, and shows it.
        assert any(d.startswith("refused by host") and expect in d for d in board.downs)
        assert not conn.up
    finally:
        conn.stop()
        board.stop()


def test_replayed_hello_and_proof_are_refused(registry: PairedBoards) -> None:
    key = registry.add(BOARD_ID.hex())
    # Record a genuine board's bytes (HELLO, then its proof) in a first session.
    board = FakeBoard(key).start()
    conn, q = _serve(board.path, registry)
    try:
        assert isinstance(_first(q, (BoardUp, BoardRefused)), BoardUp)
    finally:
        conn.stop()
    recorded = bytes(board.sent)
    board.replay = recorded  # the genuine board falls silent; an attacker replays
    conn, q = _serve(board.path, registry)
    try:
        time.sleep(0.3)
        os.write(board.master, recorded)
        ev = _first(q, (BoardUp, BoardRefused))
        assert isinstance(ev, BoardRefused), ev
        assert "does not match" in ev.reason or "no pairing proof" in ev.reason
    finally:
        conn.stop()
        board.stop()
