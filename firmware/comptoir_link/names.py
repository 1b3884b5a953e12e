# Names of the link's frame types, capabilities and STATUS fields, for logs and
# screens. Shared like frames.py, but only the host loads it: on a board these
# tables would cost heap for nothing.
from comptoir_link import frames as F

NAMES = {
    F.HELLO: "HELLO",
    F.HELLO_ACK: "HELLO_ACK",
    F.HELLO_REJECT: "HELLO_REJECT",
    F.ACK: "ACK",
    F.NAK: "NAK",
    F.HEARTBEAT: "HEARTBEAT",
    F.RESET: "RESET",
    F.LOG: "LOG",
    F.ERROR: "ERROR",
    F.BENCH_REQUEST: "BENCH_REQUEST",
    F.BENCH_DATA: "BENCH_DATA",
    F.BENCH_DONE: "BENCH_DONE",
    F.STATUS: "STATUS",
    F.STATUS_REQUEST: "STATUS_REQUEST",
    F.PAIR_PROOF: "PAIR_PROOF",
    F.CHALLENGE: "CHALLENGE",
    F.OBJECT_CHUNK: "OBJECT_CHUNK",
    F.TAP_ERROR: "TAP_ERROR",
    F.VERDICT: "VERDICT",
    F.QR_TEXT: "QR_TEXT",
    F.CHALLENGE_NEEDED: "CHALLENGE_NEEDED",
}

# STATUS payload: u32 LE values in this order.
STATUS_FIELDS = ("free_heap", "min_free_heap", "uptime_ms", "crc_errors", "malformed_frames",
                 "oversized_frames", "retransmits", "duplicates", "link_lost", "sessions",
                 "heap_after_gc", "nfc_taps", "short_frames", "bad_version", "stale_session",
                 "unknown_type", "bad_ack", "out_of_order", "no_session")

CAP_NAMES = (
    (F.CAP_NFC, "nfc"),
    (F.CAP_CAMERA, "camera"),
    (F.CAP_QR_DECODE, "qr-decode"),
    (F.CAP_DISPLAY, "display"),
    (F.CAP_BUZZER, "buzzer"),
    (F.CAP_LED, "led"),
)


def caps_names(caps):
    return [name for bit, name in CAP_NAMES if caps & bit]


