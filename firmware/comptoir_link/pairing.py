# Board pairing: the board proves it holds the key provisioned at flashing time.
# After HELLO_ACK, the board's first sequenced frame is PAIR_PROOF:
#   HMAC-SHA256(key, "comptoir-pair-v1" | board_id | board_nonce | host_nonce | session)[:16]
# The host nonce is fresh for every session, so a recorded HELLO and proof
# replayed later do not verify. Shared by the firmware (which proves) and the
# host (which checks); hashlib.sha256 exists on both interpreters, hmac does not
# on MicroPython, hence the few lines of RFC 2104 below.
import hashlib

PROOF_LEN = 16
_LABEL = b"comptoir-pair-v1"
_BLOCK = 64


def hmac_sha256(key, msg):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    k = bytearray(_BLOCK)
    k[: len(key)] = key
    inner = bytearray(_BLOCK)
    outer = bytearray(_BLOCK)
    for i in range(_BLOCK):
        inner[i] = k[i] ^ 0x36
        outer[i] = k[i] ^ 0x5C
    h = hashlib.sha256(inner)
    h.update(msg)
    o = hashlib.sha256(outer)
    o.update(h.digest())
    return o.digest()


def proof(key, board_id, board_nonce, host_nonce, session):
    msg = _LABEL + bytes(board_id) + bytes(board_nonce) + bytes(host_nonce) + bytes((session,))
    return hmac_sha256(key, msg)[:PROOF_LEN]


def same(a, b):
    """Constant-time comparison (no early exit on the first differing byte)."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0
