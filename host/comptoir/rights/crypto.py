"""Keys of the rights cache: one 32-byte master key in a 0600 file (read by
`comptoir.storage.load_or_create_key`), two derived keys.

- AES-256-GCM seals each row; the associated data is the row's lookup key, so a row's
  ciphertext moved under another key (two people swapped) fails authentication.
- HMAC-SHA256 makes the lookup keys: without the key file, a lookup key cannot be brute-forced
  over the NIR space (about 10^13 values is a small space for an unkeyed hash).
"""

from __future__ import annotations

import hashlib
import hmac

from comptoir.storage import KEY_BYTES, NONCE_BYTES, Sealer, derive_key, load_or_create_key

__all__ = ["KEY_BYTES", "LOOKUP_BYTES", "NONCE_BYTES", "RowCipher", "load_or_create_key"]

LOOKUP_BYTES = 16  # 128 bits: collisions are out of reach, and a decrypted row is checked too
_AAD_PREFIX = b"comptoir-rights-row-v1:"


class RowCipher:
    def __init__(self, master: bytes) -> None:
        self._sealer = Sealer(master, b"comptoir rights aes-256-gcm")
        self._mac = derive_key(master, b"comptoir rights lookup hmac")

    def lookup(self, canonical_identity: bytes) -> bytes:
        return hmac.new(self._mac, b"ben:" + canonical_identity, hashlib.sha256).digest()[
            :LOOKUP_BYTES
        ]

    def family(self, nir: str) -> bytes:
        """Groups the rows of one insured NIR (for sync and erasure of a family)."""
        return hmac.new(self._mac, b"fam:" + nir.encode(), hashlib.sha256).digest()[:LOOKUP_BYTES]

    def credential(self, credential_id: bytes) -> bytes:
        return hmac.new(self._mac, b"cred:" + credential_id, hashlib.sha256).digest()[:LOOKUP_BYTES]

    def key_check(self) -> bytes:
        """Stored in the database: tells a wrong key file from a corrupt row."""
        return hmac.new(self._mac, b"key-check", hashlib.sha256).digest()[:LOOKUP_BYTES]

    def seal(self, lookup: bytes, plaintext: bytes) -> bytes:
        return self._sealer.seal(_AAD_PREFIX + lookup, plaintext)

    def open(self, lookup: bytes, blob: bytes) -> bytes:
        """Raises InvalidTag when the row was altered, moved, or sealed with another key."""
        return self._sealer.open(_AAD_PREFIX + lookup, blob)
