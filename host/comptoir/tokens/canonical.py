"""A direct reader for presentations in their canonical encoding: the one the wallet makes.

Every presentation goes through the same outer steps (envelope, header, claims map); for the
exact bytes a conforming phone sends they are a fixed shape, and walking that shape byte by
byte costs a few microseconds where the general path (bounded scan, cbor2, typed checks) costs
about fifty. So `read_presentation` recognises only that shape:

    D2 84 43 A1 01 26 A0 <bstr payload> 58 40 <64 signature bytes>       (nothing after)
    payload = map(5 or 6) of, in any order, each key once:
        20 02 (typ: presentation)   06 uint (iat)   07 bstr 8..16 (cti)
        22 uint (counter)           21 bstr (credential)   [23 bstr 8..64 (challenge)]

with every length and integer in its shortest form and integers up to 2**63 - 1, and answers
None for anything else. None is not a refusal: the input then takes the general path, which
accepts it or refuses it with its precise reason. So the reader may only ever accept what the
general path accepts, with the same values; a property test (tests/host/test_tokens_canonical.py)
checks that on mutated and generated inputs, and that wallet presentations take this path.
Nothing here is trusted more than before: the signature, the credential and every check of
the pipeline still run on the values read.

`read_credential_envelope` does the same for the credential's COSE_Sign1 as the test PKI and
the insurer sign it (read on a credential's first sight only):

    D2 84 <bstr: A2 01 26 04 <bstr kid, 0..18 bytes>> A0 <bstr payload> 58 40 <64 bytes>
"""

from __future__ import annotations

_ENVELOPE_HEAD = b"\xd2\x84\x43\xa1\x01\x26\xa0"  # tag 18, array(4), bstr(3) {1: -7}, {}
# Sig_structure = ["Signature1", h'A10126', h'', payload]: everything before the payload's head.
_TO_BE_SIGNED_HEAD = b"\x84\x6aSignature1\x43\xa1\x01\x26\x40"
_SIGNATURE_HEAD = b"\x58\x40"
_MAX_BYTES = 2048  # the general path's limit for the whole presentation
_UINT_MAX = 2**63 - 1

# One-byte keys of the presentation map (CBOR encodings of -1, 6, 7, -3, -2, -4).
_K_TYP, _K_IAT, _K_CTI, _K_COUNTER, _K_CREDENTIAL, _K_CHALLENGE = (
    0x20, 0x06, 0x07, 0x22, 0x21, 0x23,
)

Fields = tuple[bytes, bytes, int, bytes, int, bytes, bytes | None]


def _uint(b: bytes, pos: int) -> tuple[int, int]:
    """A shortest-form unsigned integer at `pos` -> (value, next pos); -1 if not one."""
    ib = b[pos]
    if ib < 0x18:
        return ib, pos + 1
    if ib == 0x18:
        v = b[pos + 1]
        return (v if v >= 0x18 else -1), pos + 2
    if ib == 0x19:
        v = int.from_bytes(b[pos + 1 : pos + 3], "big")
        return (v if v >= 0x100 and pos + 3 <= len(b) else -1), pos + 3
    if ib == 0x1A:
        v = int.from_bytes(b[pos + 1 : pos + 5], "big")
        return (v if v >= 0x10000 and pos + 5 <= len(b) else -1), pos + 5
    if ib == 0x1B:
        v = int.from_bytes(b[pos + 1 : pos + 9], "big")
        ok = 0x100000000 <= v <= _UINT_MAX and pos + 9 <= len(b)
        return (v if ok else -1), pos + 9
    return -1, pos


def _bstr(b: bytes, pos: int) -> tuple[bytes | None, int]:
    """A shortest-form byte string at `pos` -> (bytes, next pos); None if not one."""
    ib = b[pos]
    if 0x40 <= ib < 0x58:
        start, n = pos + 1, ib - 0x40
    elif ib == 0x58:
        start, n = pos + 2, b[pos + 1]
        if n < 0x18:
            return None, pos
    elif ib == 0x59:
        start, n = pos + 3, int.from_bytes(b[pos + 1 : pos + 3], "big")
        if n < 0x100:
            return None, pos
    else:
        return None, pos  # longer heads cannot fit in 2048 bytes
    stop = start + n
    if stop > len(b):
        return None, pos
    return b[start:stop], stop


def read_credential_envelope(data: bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
    """-> (protected header bytes, kid, payload, signature) of a credential's COSE_Sign1 in
    canonical encoding with header {1: -7, 4: kid}, or None (then use the general path)."""
    try:
        if len(data) > _MAX_BYTES or data[0] != 0xD2 or data[1] != 0x84:
            return None
        size = data[2] - 0x40  # the protected header: a short byte string
        if not 5 <= size <= 23:
            return None
        protected = data[3 : 3 + size]
        if protected[:4] != b"\xa2\x01\x26\x04" or protected[4] - 0x40 != size - 5:
            return None
        pos = 3 + size
        if data[pos] != 0xA0:
            return None
        payload, pos = _bstr(data, pos + 1)
        if payload is None or data[pos : pos + 2] != _SIGNATURE_HEAD or len(data) != pos + 66:
            return None
        return protected, protected[5:], payload, data[pos + 2 :]
    except IndexError:  # truncated
        return None


def read_presentation(data: bytes) -> Fields | None:
    """-> (Sig_structure bytes the device signed, signature, iat, cti, counter, credential,
    challenge or None), or None when `data` is not a presentation in canonical encoding (then
    use the general path)."""
    try:
        return _read(data)
    except IndexError:  # ran off the end: truncated somewhere
        return None


def _read(data: bytes) -> Fields | None:
    if len(data) > _MAX_BYTES or not data.startswith(_ENVELOPE_HEAD):
        return None
    payload, pos = _bstr(data, 7)
    if payload is None or data[pos : pos + 2] != _SIGNATURE_HEAD or len(data) != pos + 66:
        return None
    signature = data[pos + 2 :]

    b = payload
    ib = b[0]
    if ib != 0xA5 and ib != 0xA6:
        return None
    typ = iat = counter = -1
    cti = credential = challenge = None
    pos = 1
    for _ in range(ib - 0xA0):
        key = b[pos]
        pos += 1
        if key == _K_TYP:
            if typ != -1 or b[pos] != 0x02:
                return None
            typ = 2
            pos += 1
        elif key == _K_IAT:
            if iat != -1:
                return None
            iat, pos = _uint(b, pos)
            if iat < 0:
                return None
        elif key == _K_COUNTER:
            if counter != -1:
                return None
            counter, pos = _uint(b, pos)
            if counter < 0:
                return None
        elif key == _K_CTI:
            if cti is not None:
                return None
            cti, pos = _bstr(b, pos)
            if cti is None or not 8 <= len(cti) <= 16:
                return None
        elif key == _K_CREDENTIAL:
            if credential is not None:
                return None
            credential, pos = _bstr(b, pos)
            if not credential:  # None, or empty (the general path refuses an empty one)
                return None
        elif key == _K_CHALLENGE:
            if challenge is not None:
                return None
            challenge, pos = _bstr(b, pos)
            if challenge is None or not 8 <= len(challenge) <= 64:
                return None
        else:
            return None
    if pos != len(b) or typ == -1 or iat == -1 or counter == -1:
        return None
    if cti is None or credential is None:
        return None
    # The payload's head and bytes are in shortest form here, as in the Sig_structure.
    return _TO_BE_SIGNED_HEAD + data[7:-66], signature, iat, cti, counter, credential, challenge
