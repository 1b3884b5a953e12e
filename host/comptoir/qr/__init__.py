"""The QR path on the host: camera frames from the boards are reassembled, decoded with pyzbar
and verified once per screen; the verdict goes back to the board (docs/qr.md).

    pipeline = QrPipeline(verifier, send_verdict=verdict_sender(daemon))
    daemon.subscribe(pipeline.on_event)
"""

from comptoir.objects import Chunk, Reassembler, parse_chunk
from comptoir.verdicts import verdict_for, verdict_payload, verdict_sender

from .decode import DecodeError, decode_frame
from .pipeline import QrPipeline, Seen

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
