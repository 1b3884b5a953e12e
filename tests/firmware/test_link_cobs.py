# COBS framing: reference vectors and the streaming decoder's resynchronisation.
from mpcheck import hexb

from comptoir_link.cobs import Decoder, encode_into, max_encoded_len

# Vectors from the COBS paper's examples as commonly published.
VECTORS = (
    ("00", "01 01"),
    ("00 00", "01 01 01"),
    ("00 11 00", "01 02 11 01"),
    ("11 22 00 33", "03 11 22 02 33"),
    ("11 22 33 44", "05 11 22 33 44"),
    ("11 00 00 00", "02 11 01 01 01"),
)


def encode(data):
    out = bytearray(max_encoded_len(len(data)))
    n = encode_into(data, len(data), out)
    return bytes(out[:n])


def decode_all(stream, size=600):
    d = Decoder(size)
    frames = []
    errors = []
    for b in stream:
        r = d.feed_byte(b)
        if r >= 0:
            frames.append(bytes(d.buf[:r]))
        elif r != -1:
            errors.append(r)
    return frames, errors


def test_reference_vectors():
    for raw, enc in VECTORS:
        assert encode(hexb(raw)) == hexb(enc), raw
        frames, errors = decode_all(hexb(enc) + b"\x00")
        assert frames == [hexb(raw)] and not errors


def test_254_and_255_nonzero_bytes():
    run254 = bytes(range(1, 255))
    assert encode(run254) == b"\xff" + run254
    run255 = bytes(range(1, 256))
    assert encode(run255) == b"\xff" + run255[:254] + b"\x02\xff"
    for data in (run254, run255, run255 + b"\x00" + run254):
        assert decode_all(encode(data) + b"\x00")[0] == [data]


def test_encoded_never_contains_zero_and_respects_bound():
    data = bytes([(i * 7) % 5 for i in range(1000)])  # many zeros
    enc = encode(data)
    assert 0 not in enc
    assert len(enc) <= max_encoded_len(len(data))


def test_resync_after_noise():
    good = encode(b"\x01\x02\x00\x03") + b"\x00"
    noise = b"\x05\x99\x98"  # a block claiming 4 more bytes, cut by the next delimiter
    frames, errors = decode_all(noise + b"\x00" + good)
    assert frames == [b"\x01\x02\x00\x03"]
    assert errors == [Decoder.BAD]


def test_oversized_frame_is_skipped_and_next_one_decodes():
    big = encode(bytes([7] * 700)) + b"\x00"
    small = encode(b"ok") + b"\x00"
    frames, errors = decode_all(big + small, size=600)
    assert frames == [b"ok"]
    assert errors == [Decoder.TOO_LONG]


def test_empty_frames_are_ignored():
    frames, errors = decode_all(b"\x00\x00\x00" + encode(b"x") + b"\x00\x00")
    assert frames == [b"x"] and not errors


def test_a_final_254_byte_block_has_no_trailing_01_and_either_form_decodes():
    """docs/protocol.md §2 (issue 19): the sender ends with the FF block; a receiver also
    accepts the empty 01 block some encoders add after it."""
    body = bytes(range(1, 255))  # 254 non-zero bytes
    out = bytearray(max_encoded_len(len(body)))
    k = encode_into(body, len(body), out)
    assert bytes(out[:k]) == b"\xff" + body
    for wire in (b"\x00\xff" + body + b"\x00", b"\x00\xff" + body + b"\x01\x00"):
        d = Decoder(300)
        got = [r for r in (d.feed_byte(b) for b in wire) if r >= 0]
        assert got == [254] and bytes(d.buf[:254]) == body
