"""The bench's real-board path (SerialTarget: a serial port, the paired keys on disk),
checked without hardware: a stand-in board (the firmware on the unix port behind the
wire model) sits on the port, flashed-and-paired as `comptoir flash` leaves a board."""

from __future__ import annotations

import json
import time

import pytest

from comptoir.events import BoardUp, Message
from comptoir.pairing import PairedBoards
from comptoir_link import frames as F
from comptoir_tools.boards import definitions as B
from comptoir_tools.boards.hil import SerialTarget
from comptoir_tools.firmware.build import compile_tree
from comptoir_tools.simulators.wire import WireModel
from comptoir_tools.twin.twin import FirmwareProcess


def test_serial_target_serves_a_paired_board_and_injects_noise(tmp_path):
    board = B.load("esp32-cam-ai-thinker")
    fw = tmp_path / "fw"
    compile_tree(out=fw)
    bf = tmp_path / "board.json"
    bf.write_text(json.dumps(board.device_definition()))
    baud = board.definition["uarts"]["host"]["baud"]
    wire = WireModel(baud, tmp_path / "dev", name="stand-in", seed=3).start()
    paired = PairedBoards(tmp_path / "paired")
    proc = FirmwareProcess(fw, {"host": wire.path_a}, bauds={"host": baud},
                           board_id="c0a7f1a5", pair_key=paired.add("c0a7f1a5"),
                           state_dir=tmp_path / "state", board_file=bf).start()
    target = None
    try:
        target = SerialTarget(board.name, str(wire.path_b), paired_dir=paired.dir,
                              heartbeat_ms=100)
        up = target.log.expect(lambda e: isinstance(e, BoardUp), 30)
        assert up.board.board_id == "c0a7f1a5" and up.board.name == board.name
        target.inject(b"\x00" + bytes(range(1, 120)) + b"\x00")
        mark = target.log.mark()
        target.daemon.send(target.port, F.STATUS_REQUEST)
        target.log.expect(lambda e: isinstance(e, Message) and e.ftype == F.STATUS, 5,
                          after=mark)
        assert target.daemon.connections[target.port].up
    finally:
        if target is not None:
            target.stop()
        proc.stop()
        wire.stop()


def test_serial_target_refuses_a_missing_port(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SerialTarget("devkitc-pn532-spi", str(tmp_path / "ttyUSB9"))


def test_serial_target_answers_taps_as_the_person_prompt_test_expects(tmp_path):
    """The hardware-only tap test's path, checked with a stand-in: the "person" is a
    simulated PN532 with a phone, behind a second wire, on the stand-in board."""
    from comptoir.nfc_service import Presentation
    from comptoir_tools.simulators.phone import Phone
    from comptoir_tools.simulators.pn532_sim import PN532Sim, Timing

    board = B.load("devkitc-pn532-spi")
    fw = tmp_path / "fw"
    compile_tree(out=fw)
    bf = tmp_path / "board.json"
    bf.write_text(json.dumps(board.device_definition()))
    wire = WireModel(115200, tmp_path / "dev", name="stand-in", seed=3).start()
    pn_wire = WireModel(115200, tmp_path / "dev", name="pn532", seed=4).start()
    sim = PN532Sim(path=pn_wire.path_b, timing=Timing(model_uart=False)).start()
    paired = PairedBoards(tmp_path / "paired")
    proc = FirmwareProcess(fw, {"host": wire.path_a, "pn532": pn_wire.path_a},
                           board_id="c0a7f1a6", pair_key=paired.add("c0a7f1a6"),
                           state_dir=tmp_path / "state", board_file=bf).start()
    target = None
    try:
        target = SerialTarget(board.name, str(wire.path_b), paired_dir=paired.dir)
        target.log.expect(lambda e: isinstance(e, BoardUp), 30)
        wallet = target.insurer.activate(target.insurer.family(12, beneficiaries=1))
        time.sleep(0.5)
        sim.place(Phone(wallet.present_nfc))
        ev = target.log.expect(lambda e: isinstance(e, Presentation), 15)
        assert ev.channel == "nfc" and ev.result.ok
    finally:
        if target is not None:
            target.stop()
        proc.stop()
        sim.close()
        pn_wire.stop()
        wire.stop()
