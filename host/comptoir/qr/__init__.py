"""The QR path on the host: camera frames from the boards are reassembled, decoded with pyzbar
and verified once per screen; the verdict goes back to the board (docs/qr.md).

    pipeline = QrPipeline(verifier, send_verdict=verdict_sender(daemon))
    daemon.subscribe(pipeline.on_event)
"""

from .decode import DecodeError, decode_frame
from .pipeline import QrPipeline, Seen, verdict_for, verdict_payload, verdict_sender
from .reassembly import Chunk, Reassembler, parse_chunk

__all__ = [
    "Chunk",
    "DecodeError",
    "QrPipeline",
    "Reassembler",
    "Seen",
    "decode_frame",
    "parse_chunk",
    "verdict_for",
    "verdict_payload",
    "verdict_sender",
]
