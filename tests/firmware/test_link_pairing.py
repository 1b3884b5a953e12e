# Pairing proof: HMAC-SHA256 as RFC 4231 defines it, on both interpreters, and
# the board sending its proof as the first frame of a session.
from linkpair import Pair
from mpcheck import hexb

from comptoir_link import frames as F
from comptoir_link import pairing


def test_hmac_sha256_rfc4231_vectors():
    # Test case 1
    assert pairing.hmac_sha256(b"\x0b" * 20, b"Hi There") == hexb(
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    # Test case 2
    assert pairing.hmac_sha256(b"Jefe", b"what do ya want for nothing?") == hexb(
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    # Test case 6: a key longer than the block is hashed first
    msg = b"Test Using Larger Than Block-Size Key - Hash Key First"
    assert pairing.hmac_sha256(b"\xaa" * 131, msg) == hexb(
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def test_constant_time_compare():
    assert pairing.same(b"abc", b"abc")
    assert not pairing.same(b"abc", b"abd")
    assert not pairing.same(b"abc", b"ab")


def test_board_with_key_sends_proof_first():
    p = Pair()
    key = b"k" * 32
    p.board._pair_key = key
    p.host._random = p._random
    p.connect()
    p.run(50)
    assert p.host_got and p.host_got[0][0] == F.PAIR_PROOF
    want = pairing.proof(key, b"\x01\x02\x03\x04", p.host.nonce, p.host.host_nonce, p.host.session)
    assert p.host_got[0][1] == want
    assert len(p.host.host_nonce) == 8


def test_board_without_key_sends_no_proof():
    p = Pair()
    p.host._random = p._random
    p.connect()
    p.run(50)
    assert p.host_got == []


def test_keyed_board_refuses_a_hello_ack_without_host_nonce():
    """docs/protocol.md §10 (issue 19): a provisioned board only comes up with a host that asks
    for its proof; a HELLO_ACK without HOST_NONCE is counted and ignored (before: the session
    came up with no proof ever sent)."""
    p = Pair()
    p.board._pair_key = b"k" * 32
    p.run(300)  # the host has no random source: its HELLO_ACK carries no HOST_NONCE
    assert p.board.state != 1 and p.host_got == []
    assert p.board.counter("malformed_frames") >= 1
    p.host._random = p._random
    p.run(600)
    assert p.board.state == 1 and p.host_got[0][0] == F.PAIR_PROOF


def test_hello_ack_echoing_another_nonce_is_ignored():
    """§5: a HELLO_ACK whose NONCE is not the current attempt's is counted as stale_session and
    ignored; the board goes on repeating the same HELLO."""
    p = Pair()

    def wrong_nonce(chunk):
        from test_link_session import _rewrite

        def edit(body):
            i = body.index(bytes((F.T_NONCE, 8)))
            return body[: i + 2] + bytes(8) + body[i + 10:]

        return _rewrite(chunk, edit) if chunk and _is(chunk, F.HELLO_ACK) else chunk

    p.run(300, to_board_filter=wrong_nonce)
    assert p.board.state != 1 and p.board.counter("stale_session") >= 1
    p.run(300)
    assert p.board.state == 1


def _is(chunk, ftype):
    from test_link_session import _frame_type

    return _frame_type(chunk) == ftype
