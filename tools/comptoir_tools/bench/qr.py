"""QR path benchmark (not a test): `python -m comptoir_tools.bench.qr` or `run() -> dict`.

* decode time per frame on the host (pyzbar over Pillow), VGA and QVGA, JPEG and gray, at
  the ideal and typical levels, with the decode success rate beside it;
* frames sent per accepted QR: the real firmware forwarder (CPython, fake link) fed by the
  simulated camera, its frames reassembled, decoded and verified by the real QrPipeline,
  the verdict handed back to the forwarder; and frames sent after the verdict while the
  phone stays in view (should be 0: the still scene is skipped);
* the wire floor for one frame: bytes on the line (chunk headers, link framing, COBS) x 10
  bits / baud, at 115 200 and 921 600 baud.

The end-to-end "QR shown -> verdict" p50/p95 through the twin belongs to the link owner's
bench (it needs the firmware loop to call the forwarder).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from comptoir.events import Message
from comptoir.qr import QrPipeline
from comptoir.qr.decode import decode_frame
from comptoir_link import frames as F
from comptoir_tools.simulators.camera_sim import CameraSim, Frame

ROOT = Path(__file__).resolve().parents[3]
BAUDS = (115200, 921600)
CHUNK_HEADER = 11


def _world(directory: Path) -> Any:
    sys.path.insert(0, str(ROOT / "tests" / "host"))
    from tokens_fixtures import World  # the test token world: PKI, verifier, fixed clock

    return World(directory)


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def wire_bytes(payload: int, chunk_data: int) -> int:
    """Line bytes for one object sent in chunks of chunk_data bytes."""
    total = 0
    left = payload
    while left > 0:
        n = min(chunk_data, left)
        body = F.OVERHEAD + CHUNK_HEADER + n
        total += body + body // 254 + 1 + 2  # COBS code bytes, two 0x00 delimiters
        left -= n
    return total


def decode_times(texts: list[str], frames_per_case: int = 30) -> list[dict[str, Any]]:
    rows = []
    for res in ("VGA", "QVGA"):
        for fmt in ("jpeg", "gray"):
            for level in (0, 2):
                cam = CameraSim(21, resolution=res, fmt=fmt)
                times, ok, sizes = [], 0, []
                for i in range(frames_per_case):
                    text = texts[i % len(texts)]
                    f = cam.frame(text, level)
                    payload = f.payload()
                    t0 = time.perf_counter()
                    got = decode_frame(f.kind, payload)
                    times.append(time.perf_counter() - t0)
                    ok += text.encode() in got
                    sizes.append(len(payload))
                size = statistics.mean(sizes)
                rows.append({
                    "resolution": res, "format": fmt, "level": level,
                    "decode_ms_p50": round(_pct(times, 0.5) * 1000, 1),
                    "decode_ms_p95": round(_pct(times, 0.95) * 1000, 1),
                    "success": round(ok / frames_per_case, 3),
                    "frame_bytes": round(size),
                    **{f"wire_s_{b}": round(wire_bytes(int(size), 4096 - CHUNK_HEADER) * 10 / b,
                                            3) for b in BAUDS},
                })
    return rows


class _Link:
    """The board's link as the forwarder sees it; every frame is delivered at once."""

    def __init__(self, deliver: Any, tx_limit: int = 4096) -> None:
        self.tx_limit = tx_limit
        self.window = 2
        self.n_out = 0
        self.deliver = deliver

    def can_send(self) -> bool:
        return self.n_out < self.window

    def send(self, ftype: int, payload: Any, n: int = -1) -> bool:
        self.deliver(ftype, bytes(payload[:n]))
        return True


class _SimCam:
    """The forwarder's camera interface over CameraSim: each capture is a new exposure."""

    def __init__(self, sim: CameraSim, level: int) -> None:
        self.sim = sim
        self.level = level
        self.text: str | None = None
        self.frame: Frame | None = None
        self.kind = self.width = self.height = 0

    def capture(self) -> int:
        if self.text is None:
            return 0
        # The phone held still: one pose per presentation, a new exposure each time.
        self.frame = self.sim.frame(self.text, self.level, pose=0)
        self.kind, self.width, self.height = self.frame.kind, self.frame.width, self.frame.height
        return len(self.frame.data)

    def read(self, offset: int, buf: Any) -> int:
        assert self.frame is not None
        n = max(0, min(len(buf), len(self.frame.data) - offset))
        buf[:n] = self.frame.data[offset:offset + n]
        return n

    def release(self) -> None:
        self.frame = None


def frames_per_accepted_qr(world: Any, level: int, fmt: str, trials: int = 5,
                           after: int = 5) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "firmware"))
    from frame_forwarder import CAPTURED, SENT, SKIPPED_STILL, FrameForwarder
    from tokens_fixtures import NOW

    verdicts: list[tuple[int, int]] = []
    clock = [0.0]
    pipe = QrPipeline(world.verifier, lambda port, oid, v, r, t: verdicts.append((oid, v)),
                      clock=lambda: clock[0])
    world.verifier._clock = lambda: NOW
    sent_before, sent_after, skipped = [], [], 0
    for trial in range(trials):
        wallet = world.wallet(world.family(100 + trial, beneficiaries=0))
        wallet._clock = lambda: NOW
        cam = _SimCam(CameraSim(31 + trial, resolution="VGA", fmt=fmt), level)
        fwd = FrameForwarder(cam, 4096, max_fps=0, first_id=0x8000)

        def deliver(ftype: int, payload: bytes) -> None:
            pipe.on_event(Message("p", "b", ftype, payload, clock[0]))

        link = _Link(deliver)
        cam.text = wallet.present_qr(now=NOW)
        start = len(verdicts)
        seen = start

        def step(fwd: FrameForwarder = fwd, link: _Link = link) -> None:
            nonlocal seen
            fwd.step(link, True)
            # Verdicts reach the board after its frame went out, on a later loop step.
            for oid, _ in verdicts[seen:]:
                fwd.on_verdict(oid)
            seen = len(verdicts)
            clock[0] += 0.01

        steps = 0
        while len(verdicts) == start and steps < 5000:
            step()
            steps += 1
        sent_before.append(fwd.stats[SENT])
        base = fwd.stats[SENT]
        captured = fwd.stats[CAPTURED]
        while fwd.stats[CAPTURED] < captured + after:  # the phone stays in view
            step()
        sent_after.append(fwd.stats[SENT] - base)
        skipped += fwd.stats[SKIPPED_STILL]
        clock[0] += 30  # next patient
    return {"level": level, "format": fmt, "trials": trials,
            "frames_sent_per_verdict_mean": round(statistics.mean(sent_before), 2),
            "frames_sent_per_verdict_max": max(sent_before),
            "frames_sent_after_verdict": sum(sent_after),
            "still_frames_skipped": skipped,
            "verdicts": len(verdicts)}


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        world = _world(Path(tmp))
        from tokens_fixtures import NOW

        texts = [world.wallet(world.family(s, beneficiaries=s % 3)).present_qr(now=NOW)
                 for s in range(1, 5)]
        t0 = time.perf_counter()
        decode = decode_times(texts)
        forward = [frames_per_accepted_qr(world, lv, fmt) for lv in (0, 2)
                   for fmt in ("jpeg", "gray")]
        return {"decode": decode, "forwarding": forward,
                "qr_chars": [len(t) for t in texts],
                "seconds": round(time.perf_counter() - t0, 1)}


def main() -> int:
    result = run()
    print("decode (host, per frame):")
    for r in result["decode"]:
        print("  {resolution:4} {format:4} level {level}: p50 {decode_ms_p50} ms, p95 "
              "{decode_ms_p95} ms, success {success:.0%}, {frame_bytes} B, wire floor "
              "{wire_s_115200} s @115200, {wire_s_921600} s @921600".format(**r))
    print("forwarding (VGA):")
    for r in result["forwarding"]:
        print("  {format:4} level {level}: {frames_sent_per_verdict_mean} frames per verdict "
              "(max {frames_sent_per_verdict_max}), {frames_sent_after_verdict} sent after "
              "it, {still_frames_skipped} still frames skipped".format(**r))
    print("QR characters:", result["qr_chars"], "- bench took", result["seconds"], "s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
