"""Personal data sealed at rest: AES-256-GCM, a random 96-bit nonce per seal, and associated
data that names the row the blob belongs to. A blob copied under another row (two people
swapped, a care sheet moved to another invoice) fails authentication instead of opening as
someone else. Each store derives its own key from the master key with its own label, so a blob
of one store never opens with another store's key.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import KeyFileError
from .keys import KEY_BYTES

NONCE_BYTES = 12
TAG_BYTES = 16


def derive_key(master: bytes, label: bytes) -> bytes:
    """A 32-byte key for one use (`label`) of a master key (HKDF-SHA256, no salt)."""
    return HKDF(hashes.SHA256(), KEY_BYTES, salt=None, info=label).derive(master)


class Sealer:
    """seal(aad, plaintext) -> nonce + ciphertext + tag; open(aad, blob) -> plaintext, or
    InvalidTag when the blob was altered, bound to another row, or sealed with another key."""

    def __init__(self, master: bytes, label: bytes) -> None:
        if len(master) != KEY_BYTES:
            raise KeyFileError(f"master key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(derive_key(master, label))

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, aad: bytes, blob: bytes) -> bytes:
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise InvalidTag()
        return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
