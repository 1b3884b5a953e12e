"""The link conformance vectors (conformance/link/): what the generator writes today, from the
real firmware (the same files are replayed against it on CPython and MicroPython by
tests/firmware/test_link_vectors.py)."""

from __future__ import annotations

from pathlib import Path

from comptoir_tools.conformance import link as conformance_link
from comptoir_tools.conformance import tokens as conformance

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "conformance" / "link"


def test_the_committed_link_vectors_are_what_the_generator_writes():
    fresh = conformance_link.link_vectors()
    assert sorted(fresh) == sorted(p.stem for p in VECTORS.glob("*.json"))
    for name, doc in fresh.items():
        assert conformance.dump(doc) == (VECTORS / f"{name}.json").read_text(encoding="utf-8"), (
            f"{name}: run `comptoir conformance generate --out conformance`")


def test_the_link_vectors_cover_the_frames_and_answers_protocol_md_names():
    """Every frame type a board answers with, and every board-side rule issue 19 decided."""
    from comptoir_link import frames as F

    docs = conformance_link.link_vectors()
    sent = {f["type"] for d in docs.values() for s in d["steps"] for f in s["board_sends"]}
    assert {F.HELLO, F.ACK, F.NAK, F.HEARTBEAT, F.ERROR, F.STATUS, F.PAIR_PROOF,
            F.BENCH_DATA, F.BENCH_DONE} <= sent
    for name in ("paired-board-without-host-nonce", "hello-ack-wrong-nonce",
                 "verdict-for-an-object-never-sent", "hello-reject-waits", "log-to-board"):
        assert name in docs
