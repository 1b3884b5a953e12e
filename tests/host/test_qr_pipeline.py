"""QrPipeline: frames from a board to one verdict per screen; replays refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokens_fixtures import NOW, World

from comptoir.events import BoardDown, Message
from comptoir.objects import chunk_payload
from comptoir.qr import QrPipeline, verdict_payload
from comptoir.qr.decode import DecodeError, decode_frame
from comptoir.tokens.reasons import Reason
from comptoir.verdicts import REASON_CODES
from comptoir_link import frames as F
from comptoir_tools.simulators.camera_sim import CameraSim, Frame


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Harness:
    def __init__(self, tmp: Path, beneficiaries: int = 0) -> None:
        self.world = World(tmp)
        self.world.verifier._clock = lambda: NOW  # the token world's fixed time
        self.wallet = self.world.wallet(self.world.family(beneficiaries=beneficiaries))
        self.wallet._clock = lambda: NOW
        self.clock = Clock()
        self.verdicts: list[tuple[str, int, int, int, str]] = []
        self.pipe = QrPipeline(self.world.verifier, lambda *v: self.verdicts.append(v),
                               clock=self.clock, hold=5.0)
        self.cam = CameraSim(3, resolution="VGA", fmt="jpeg")
        self.next_id = 0x8000

    def show(self, frame: Frame, port: str = "p", board: str = "b1", chunk: int = 4085) -> int:
        """Send a frame as the board would; return its object id."""
        oid = self.next_id
        self.next_id += 1
        data = frame.payload()
        for off in range(0, len(data), chunk):
            self.pipe.on_event(Message(port, board, F.OBJECT_CHUNK,
                                       chunk_payload(frame.kind, oid, len(data), off,
                                                     data[off:off + chunk]), self.clock.t))
        return oid


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_accepted_once_for_a_still_screen(h: Harness) -> None:
    text = h.wallet.present_qr()
    first = h.show(h.cam.frame(text, 1))
    assert [(v[1], v[2], v[3]) for v in h.verdicts] == [(first, F.V_ACCEPTED, 0)]
    for _ in range(10):  # the next frames of the same screen
        h.clock.t += 0.2
        h.show(h.cam.frame(text, 1))
    assert len(h.verdicts) == 1
    assert h.pipe.counters["repeats"] == 10 and h.pipe.counters["verified"] == 1


def test_a_phone_left_in_view_is_never_re_verified(h: Harness) -> None:
    text = h.wallet.present_qr()
    h.show(h.cam.frame(text, 0))
    for _ in range(40):  # 20 s, longer than the hold, seen all along
        h.clock.t += 0.5
        h.show(h.cam.frame(text, 0))
    assert len(h.verdicts) == 1  # no "replayed" after the window


def test_screenshot_of_a_used_qr_is_refused_as_replay(h: Harness) -> None:
    text = h.wallet.present_qr()
    h.show(h.cam.frame(text, 1))
    h.clock.t += 30  # the phone went away; later the same image is shown again
    oid = h.show(h.cam.frame(text, 2))
    assert len(h.verdicts) == 2
    _, vid, verdict, reason, shown = h.verdicts[1]
    assert (vid, verdict, reason) == (oid, F.V_REFUSED, REASON_CODES[Reason.REPLAYED])
    assert shown == "replayed"


def test_same_screen_on_another_board_is_verified_there(h: Harness) -> None:
    text = h.wallet.present_qr()
    h.show(h.cam.frame(text, 0), port="p", board="b1")
    h.show(h.cam.frame(text, 0), port="q", board="b2")
    assert [v[2] for v in h.verdicts] == [F.V_ACCEPTED, F.V_REFUSED]  # a replay there


def test_a_new_presentation_is_new(h: Harness) -> None:
    h.show(h.cam.frame(h.wallet.present_qr(), 0))
    h.clock.t += 0.5
    h.show(h.cam.frame(h.wallet.present_qr(), 0))
    assert [v[2] for v in h.verdicts] == [F.V_ACCEPTED, F.V_ACCEPTED]


def test_dedupe_survives_a_reconnection(h: Harness) -> None:
    text = h.wallet.present_qr()
    h.show(h.cam.frame(text, 0))
    h.pipe.on_event(BoardDown("p", "link lost"))
    h.clock.t += 1
    h.show(h.cam.frame(text, 0))
    assert len(h.verdicts) == 1


def test_several_beneficiaries_ask_to_choose(tmp_path: Path) -> None:
    h = Harness(tmp_path, beneficiaries=2)
    h.show(h.cam.frame(h.wallet.present_qr(), 0))
    assert h.verdicts[0][2] == F.V_CHOOSE_BENEFICIARY


def test_grayscale_frames_and_qr_text_from_an_on_board_decoder(h: Harness) -> None:
    gray = CameraSim(4, resolution="VGA", fmt="gray")
    h.show(gray.frame(h.wallet.present_qr(), 0))
    text = h.wallet.present_qr().encode()
    h.pipe.on_event(Message("p", "b1", F.QR_TEXT, bytes((5, 0)) + text, h.clock.t))
    h.pipe.on_event(Message("p", "b1", F.QR_TEXT, bytes((6, 0)) + text, h.clock.t))
    assert [(v[1], v[2]) for v in h.verdicts][1:] == [(5, F.V_ACCEPTED)]


def test_frames_without_a_code_and_bad_frames_send_nothing(h: Harness) -> None:
    h.show(Frame(F.OBJ_FRAME_GRAY, 8, 8, bytes(64)))
    h.show(Frame(F.OBJ_FRAME_JPEG, 8, 8, b"\xff\xd8 not really"))
    assert not h.verdicts
    assert h.pipe.counters == {"frames": 2, "frames_without_qr": 1, "bad_frames": 1}


def test_foreign_qr_is_refused_once(h: Harness) -> None:
    import io

    import segno
    from PIL import Image

    buf = io.BytesIO()
    segno.make_qr("https://example.org").save(buf, kind="png", scale=6)
    img = Image.open(io.BytesIO(buf.getvalue())).convert("L")
    canvas = Image.new("L", (320, 240), 255)
    canvas.paste(img, (40, 20))
    f = Frame(F.OBJ_FRAME_GRAY, 320, 240, canvas.tobytes())
    h.show(f)
    h.show(f)
    assert [(v[2], v[3]) for v in h.verdicts] == [(F.V_REFUSED,
                                                   REASON_CODES[Reason.QR_BAD_PREFIX])]


@pytest.mark.parametrize("kind,data", [
    (F.OBJ_FRAME_GRAY, b"\x01"),
    (F.OBJ_FRAME_GRAY, bytes((0, 0, 0, 0))),
    (F.OBJ_FRAME_GRAY, bytes((4, 0, 4, 0)) + bytes(15)),
    (F.OBJ_FRAME_GRAY, bytes((0xFF, 0xFF, 0xFF, 0xFF))),
    (F.OBJ_FRAME_JPEG, b"GIF89a"),
    (F.OBJ_FRAME_JPEG, b"\xff\xd8\xff\xe0" + bytes(100)),
    (F.OBJ_NFC_PRESENTATION, b"\xff\xd8"),
])
def test_hostile_frames_are_refused_by_name(kind: int, data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_frame(kind, data)


def test_verdict_payload_layout() -> None:
    assert verdict_payload(0x8001, F.V_REFUSED, 0x0102, "replayed") == (
        bytes((0x01, 0x80, 2, 0x02, 0x01)) + b"replayed")
